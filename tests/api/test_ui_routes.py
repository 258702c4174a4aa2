"""Routes the web UI uses: predictions, Prefect logs, dataset previews and generated samples."""

from __future__ import annotations

import base64
import io

from PIL import Image

from api import crud


def _png(size=(32, 32)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, (10, 200, 30)).save(buf, format="PNG")
    return buf.getvalue()


def test_generate_a_sample_then_preview_it_with_labels(client, auth):
    made = client.post("/api/datasets/sample", json={"name": "shapes-detect"}, headers=auth)
    assert made.status_code == 201, made.text
    body = made.json()
    assert body["name"] == "shapes-detect" and body["task"] == "detect" and body["classes"]
    again = client.post("/api/datasets/sample", json={"name": "shapes-detect"}, headers=auth)
    assert again.status_code == 409 and "exists already" in again.json()["detail"]

    samples = client.get(f"/api/datasets/{body['id']}/samples", params={"n": 3}, headers=auth)
    assert samples.status_code == 200, samples.text
    items = samples.json()["items"]
    assert len(items) == 3
    assert all(p["path"].startswith("images/val/") for p in items)
    assert any(c in items[0]["caption"] for c in body["classes"])
    image = Image.open(io.BytesIO(base64.b64decode(items[0]["png_base64"])))
    assert image.format == "PNG" and image.size[0] == 256


def test_classify_samples_are_captioned_with_their_class(client, auth):
    made = client.post("/api/datasets/sample", json={"name": "shapes-classify"}, headers=auth).json()
    items = client.get(f"/api/datasets/{made['id']}/samples", params={"n": 4}, headers=auth).json()["items"]
    assert len(items) == 4 and {i["caption"] for i in items} <= set(made["classes"])


def test_unknown_sample_names_the_choices(client, auth):
    resp = client.post("/api/datasets/sample", json={"name": "shapes-nope"}, headers=auth)
    assert resp.status_code == 422 and "shapes-detect" in resp.json()["detail"]


def test_routes_need_a_token(client):
    assert client.post("/api/datasets/sample", json={"name": "shapes-detect"}).status_code == 401
    assert client.get("/api/runs/x/logs").status_code == 401


def test_logs_are_empty_without_prefect(client, auth, db):
    run = crud.create_run(db, spec={"model": "yolo11n", "dataset": "d"})
    crud.update_run(db, run=run, prefect_flow_run_id="00000000-0000-0000-0000-000000000000")
    resp = client.get(f"/api/runs/{run.id}/logs", params={"tail": 5}, headers=auth)
    assert resp.status_code == 200 and resp.json() == {"run_id": run.id, "lines": []}
    assert client.get("/api/runs/nope/logs", headers=auth).status_code == 404


def test_predict_refuses_a_non_image(client, auth, db):
    run = crud.create_run(db, spec={"model": "yolo11n", "dataset": "d"})
    resp = client.post(f"/api/runs/{run.id}/predict", files={"file": ("notes.png", b"not an image", "image/png")},
                       headers=auth)
    assert resp.status_code == 422 and "notes.png is not an image" in resp.json()["detail"]


def test_predict_needs_the_runs_outputs(client, auth, db):
    run = crud.create_run(db, spec={"model": "yolo11n", "dataset": "d"})
    resp = client.post(f"/api/runs/{run.id}/predict", files={"file": ("a.png", _png(), "image/png")}, headers=auth)
    assert resp.status_code == 409 and "no complete outputs" in resp.json()["detail"]
    assert client.post("/api/runs/nope/predict", files={"file": ("a.png", _png(), "image/png")},
                       headers=auth).status_code == 404
