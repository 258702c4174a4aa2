"""The whole backend path, once on the file:// stack and once on the S3 one (`any_stack`):
POST /api/runs → the Prefect deployment and a worker train a tiny model → heartbeats and metrics
come back through the callbacks → the run ends completed in the database with its metrics and
checkpoint, and a WebSocket subscriber saw every epoch; then the API exports it and predicts with it.
A dataset uploaded through the API is stored and previewed. On S3 every file of them (dataset,
checkpoints, artifacts, the export) is an object of the bucket and the stack's local storage folder
is never made (issue 18)."""

from __future__ import annotations

import io
import json
import zipfile

import httpx
import pytest
from websockets.sync.client import connect

from tests.stack_fixtures import stored

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _auth(stack: dict) -> tuple[str, dict[str, str]]:
    token = (stack["home"] / "api_token").read_text().strip()
    return token, {"Authorization": f"Bearer {token}"}


def test_api_run_end_to_end_with_live_events(any_stack):
    api = any_stack["API_URL"]
    token, auth = _auth(any_stack)
    spec = {"model": "yolo11n", "dataset": "shapes-detect", "epochs": 3, "image_size": 64, "batch_size": 8,
            "pretrained": False, "workers": 0}
    created = httpx.post(f"{api}/api/runs", json={"spec": spec}, headers=auth, timeout=30)
    assert created.status_code == 201, created.text
    run_id = created.json()["id"]

    events = []
    with connect(f"{api.replace('http', 'ws', 1)}/api/runs/{run_id}/ws?token={token}", open_timeout=10) as ws:
        while True:
            try:
                events.append(json.loads(ws.recv(timeout=180)))
            except Exception:  # noqa: BLE001 - the server closes the socket once the run has ended
                break
    states = [e["run"]["state"] for e in events if e["type"] == "state"]
    assert states[-1] == "completed", events[-3:]
    assert sorted({e["epoch"] for e in events if e["type"] == "metrics"}) == [1, 2, 3]

    run = httpx.get(f"{api}/api/runs/{run_id}", headers=auth, timeout=30).json()
    assert run["state"] == "completed" and run["epochs_done"] == 3
    assert run["checkpoint_uri"] == f"{any_stack['VTP_STORAGE_URL']}/runs/{run_id}/checkpoints/best.pt"
    assert "metrics/mAP50-95(B)" in run["final_metrics"]
    points = httpx.get(f"{api}/api/runs/{run_id}/metrics", headers=auth, timeout=30).json()
    points = points["points"] if isinstance(points, dict) else points
    assert {p["epoch"] for p in points} == {1, 2, 3}
    assert len(points) == len({(p["epoch"], p["name"]) for p in points}), "no point is stored twice"
    files = httpx.get(f"{api}/api/runs/{run_id}/artifacts", headers=auth, timeout=30).json()
    names = [f["path"] if isinstance(f, dict) else f for f in (files["files"] if isinstance(files, dict) else files)]
    assert "checkpoints/best.pt" in names
    best = httpx.get(f"{api}/api/runs/{run_id}/artifacts/checkpoints/best.pt", headers=auth, timeout=60)
    assert best.status_code == 200 and len(best.content) > 100_000

    # the export is stored beside the checkpoint, and the API predicts with the stored checkpoint
    exported = httpx.post(f"{api}/api/runs/{run_id}/export", params={"format": "onnx"}, headers=auth, timeout=180)
    assert exported.status_code == 200, exported.text
    assert exported.json()["uri"] == f"{any_stack['VTP_STORAGE_URL']}/runs/{run_id}/exports/model.onnx"
    onnx = httpx.get(f"{api}/api/runs/{run_id}/artifacts/exports/model.onnx", headers=auth, timeout=60)
    assert onnx.status_code == 200 and len(onnx.content) == exported.json()["size"]
    from PIL import Image

    image = io.BytesIO()
    Image.new("RGB", (64, 64), (200, 30, 30)).save(image, format="PNG")
    pred = httpx.post(f"{api}/api/runs/{run_id}/predict", files={"file": ("x.png", image.getvalue(), "image/png")},
                      headers=auth, timeout=120)
    assert pred.status_code == 200 and pred.json()["png_base64"], pred.text

    summary = json.loads(httpx.get(f"{api}/api/runs/{run_id}/artifacts/summary.json", headers=auth, timeout=30).content)
    assert summary["checkpoint_uri"] == run["checkpoint_uri"] and summary["epochs_completed"] == 3
    stored(any_stack, f"runs/{run_id}/manifest.json", f"runs/{run_id}/summary.json",
           f"runs/{run_id}/checkpoints/best.pt", f"runs/{run_id}/artifacts/", f"runs/{run_id}/exports/model.onnx")


def test_dataset_upload_is_stored_and_previewed(any_stack, tmp_path):
    """An archive uploaded through the stack's API becomes a stored version with its report, and its
    preview thumbnails are drawn from what was stored."""
    from tasks.samples import make_sample

    api = any_stack["API_URL"]
    _, auth = _auth(any_stack)
    sample = make_sample("shapes-classify", tmp_path / "ds", n_train=6, n_val=3, image_size=32)
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zf:
        for p in sorted(sample.rglob("*")):
            if p.is_file():
                zf.write(p, f"ds/{p.relative_to(sample).as_posix()}")
    up = httpx.post(f"{api}/api/datasets", data={"name": "uploaded-shapes"}, headers=auth, timeout=120,
                    files={"file": ("ds.zip", archive.getvalue(), "application/zip")})
    assert up.status_code == 201, up.text
    dataset = up.json()
    assert dataset["task"] == "classify" and dataset["report"] and len(dataset["versions"]) == 1
    assert dataset["uri"].startswith(f"{any_stack['VTP_STORAGE_URL']}/datasets/uploaded-shapes/"), dataset["uri"]
    previews = httpx.get(f"{api}/api/datasets/{dataset['id']}/samples", params={"n": 3}, headers=auth, timeout=60)
    assert previews.status_code == 200, previews.text
    items = previews.json()["items"]
    assert len(items) == 3 and all(i["png_base64"] and i["caption"] for i in items)
    version = dataset["uri"].rstrip("/").rsplit("/", 1)[1]
    stored(any_stack, "datasets/index.json", f"datasets/uploaded-shapes/{version}/manifest.json",
           f"datasets/uploaded-shapes/{version}.report.json")
