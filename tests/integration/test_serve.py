"""`vtp serve` (issue 19 item 5): a registry version served over HTTP by LitServe, with request
batching, API-token authentication, JSON predictions and an optional drawn image.

A yolo11n trained one epoch on generated shapes (its boxes are meaningless after one epoch from random
weights: the test compares the served predictions with the same model's direct predictions, not with
the truth) is promoted twice — its PyTorch checkpoint, and with its ONNX export — and each version is
served by a real `vtp serve` process. 24 concurrent requests must each get the answer the model gives
for its own image, some of them predicted together in one batch."""

from __future__ import annotations

import base64
import io
import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from PIL import Image

from tests.integration.conftest import free_port, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def registry_home(tmp_path_factory):
    """(environment for vtp processes, settings, {ref: version}, validation images, API token)."""
    from api import crud, registry
    from api.db import migrate, session_scope
    from api.tokens import create_token
    from core.settings import Settings
    from tasks.export import export_and_check
    from tasks.samples import make_sample
    from tasks.storage import Storage, upload_folder
    from tasks.train_steps import collect_outputs
    from tests.integration.test_trainers import Recorder, _context, _spec
    from trainers.ultralytics import train

    base = tmp_path_factory.mktemp("serve")
    env = {"VTP_HOME": str(base / "home"), "VTP_STORAGE_URL": (base / "storage").as_uri(),
           "VTP_DATABASE_URL": f"sqlite:///{base / 'vtp.db'}", "VTP_TRACKERS": ""}
    settings = Settings(**{k.removeprefix("VTP_").lower(): v for k, v in env.items()})
    migrate(settings.database_url)
    sample = make_sample("shapes-detect", base / "data", n_train=8, n_val=6, image_size=64)
    spec = _spec("yolo11n", task="detect", batch_size=4)
    ctx = _context(sample, "detect", base / "work", Recorder())
    result = train(spec, ctx)
    out = base / "outputs"
    collect_outputs(result, out)
    row = export_and_check(spec.model_dump(mode="json"), result.best_checkpoint, "onnx", out, None)
    assert row["size_mb"], row
    (out / "exports" / "report.json").write_text(json.dumps({"rows": [row], "machine": "test"}))
    versions = {}
    with session_scope(settings) as db:
        run = crud.create_run(db, spec=spec.model_dump(mode="json"))
        crud.update_run(db, run=run, state="completed")
        storage = Storage(settings=settings)
        run_uri = storage.uri("runs", run.id)
        (out / "summary.json").write_text(json.dumps({
            "spec": spec.model_dump(mode="json"), "metrics": result.metrics, "run_uri": run_uri,
            "main_metric": {"name": spec.main_metric, "value": result.metrics.get(spec.main_metric)},
            "dataset": {"name": "shapes-detect", "version": 1, "ref": "shapes-detect@1"},
            "checkpoint_uri": f"{run_uri}/checkpoints/best.pt"}))
        upload_folder(storage, out, "runs", run.id, run_id=run.id)
        v1, _ = registry.promote(db, settings, run, "shapes", ["staging"])
        v2, _ = registry.promote(db, settings, run, "shapes", ["production"], export="onnx")
        versions = {"shapes@staging": registry.version_dict(v1), "shapes@production": registry.version_dict(v2)}
        token = create_token(db, name="serve-test").token
    images = sorted((sample / "images" / "val").glob("*.jpg")) or sorted(sample.rglob("val/**/*.jpg"))
    assert images
    return env, settings, versions, images, token


def start(env: dict, ref: str, tmp_path: Path, *extra: str) -> tuple[subprocess.Popen, str]:
    port = free_port()
    log = open(tmp_path / f"serve-{port}.log", "wb")  # noqa: SIM115 - closed with the process
    proc = subprocess.Popen([sys.executable, "-m", "cli.main", "serve", ref, "--port", str(port), *extra],
                            env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    return proc, f"http://127.0.0.1:{port}"


def stop(proc: subprocess.Popen) -> None:
    """SIGTERM `vtp serve` (it stops its own workers) and check nothing of its process group is left."""
    import signal

    proc.terminate()
    try:
        proc.wait(60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        raise AssertionError("vtp serve did not stop on SIGTERM") from None
    left = wait_for(lambda: not _group_alive(proc.pid) or None, timeout=30, every=0.5) if _group_alive(proc.pid) else True
    assert left


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False


def b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


@pytest.mark.parametrize(("ref", "fmt"), [("shapes@staging", "pytorch"), ("shapes@production", "onnx")])
def test_concurrent_requests_are_batched_and_each_gets_its_own_answer(registry_home, tmp_path, ref, fmt):
    from trainers.ultralytics import load_predictor

    env, settings, versions, images, token = registry_home
    version = versions[ref]
    proc, url = start(env, ref, tmp_path, "--max-batch-size", "8", "--batch-timeout-ms", "50")
    auth = {"Authorization": f"Bearer {token}"}
    try:
        up(proc, url, auth, tmp_path)
        info = httpx.get(f"{url}/info", headers=auth, timeout=10).json()
        assert info["model"]["format"] == fmt and info["model"]["version"] == version["version"]

        # the same model, loaded directly, on each image: what the server must answer
        folder = settings.home / "serve" / version["id"]
        artifact = folder / (version["record"]["export"]["path"] if fmt == "onnx" else "checkpoints/best.pt")
        direct = load_predictor(artifact, task="detect")
        pool = [images[i % len(images)] for i in range(24)]
        expected = {p: direct([Image.open(p).convert("RGB")], conf=0.001, image_size=64, draw=False)[0]["predictions"]
                    for p in set(pool)}

        def ask(path: Path) -> tuple[Path, dict]:
            r = httpx.post(f"{url}/predict", json={"image": b64(path), "conf": 0.001}, headers=auth, timeout=120)
            assert r.status_code == 200, r.text
            return path, r.json()

        with ThreadPoolExecutor(24) as ex:
            answers = list(ex.map(ask, pool))
        for path, body in answers:
            assert (body["model"], body["version"], body["format"], body["task"]) == \
                ("shapes", version["version"], fmt, "detect")
            got, want = body["predictions"], expected[path]
            assert [p["class"] for p in got] == [p["class"] for p in want]
            assert [p["confidence"] for p in got] == pytest.approx([p["confidence"] for p in want], abs=1e-3)
            for a, b in zip(got, want, strict=True):
                assert a["box"] == pytest.approx(b["box"], abs=0.5)  # pixels
        assert max(body["batch"] for _, body in answers) > 1, "concurrent requests were never batched"

        # a drawn image, and the threshold of each request its own
        r = httpx.post(f"{url}/predict", json={"image": b64(pool[0]), "conf": 1.0, "draw": True}, headers=auth,
                       timeout=60)
        body = r.json()
        assert r.status_code == 200 and body["predictions"] == []
        drawn = Image.open(io.BytesIO(base64.b64decode(body["png_base64"])))
        assert drawn.size == Image.open(pool[0]).size
    finally:
        stop(proc)


def up(proc: subprocess.Popen, url: str, auth: dict, tmp_path: Path) -> None:
    """Wait until the server answers /health with 200 (the model is loaded); its log when it died."""
    wait_for(lambda: proc.poll() is not None or (
        _listening(url) and httpx.get(f"{url}/health", headers=auth, timeout=5).status_code == 200), timeout=180, every=1)
    logs = sorted(tmp_path.glob("serve-*.log"))
    assert proc.poll() is None, logs[-1].read_text()[-3000:] if logs else "no log"


def _listening(url: str) -> bool:
    try:
        httpx.get(f"{url}/health", timeout=2)
        return True
    except httpx.HTTPError:
        return False


def test_every_route_needs_a_token_and_bad_requests_say_what_is_wrong(registry_home, tmp_path):
    env, _, _, images, token = registry_home
    proc, url = start(env, "shapes@staging", tmp_path)
    auth = {"Authorization": f"Bearer {token}"}
    try:
        up(proc, url, auth, tmp_path)
        for route, method in (("/health", "GET"), ("/info", "GET"), ("/predict", "POST")):
            for headers in ({}, {"Authorization": "Bearer not-a-token"}):
                r = httpx.request(method, f"{url}{route}", headers=headers, json={"image": b64(images[0])}, timeout=30)
                assert r.status_code == 401, (route, headers, r.text)
        r = httpx.post(f"{url}/predict", headers={}, json={"image": b64(images[0])}, timeout=30)
        assert "vtp tokens create" in r.json()["detail"]
        cases = [({"image": "%%% not base64"}, 422, "not valid base64"),
                 ({"image": base64.b64encode(b"plain text").decode()}, 422, "not an image"),
                 ({"nothing": 1}, 422, '"image"'),
                 ({"image": b64(images[0]), "conf": 7}, 422, "from 0 to 1")]
        for body, status, words in cases:
            r = httpx.post(f"{url}/predict", headers=auth, json=body, timeout=30)
            assert r.status_code == status and words in r.json()["detail"], (body, r.status_code, r.text)
        assert proc.poll() is None  # still serving after the bad requests
        ok = httpx.post(f"{url}/predict", headers=auth, json={"image": b64(images[0])}, timeout=60)
        assert ok.status_code == 200 and ok.json()["version"] == 1
    finally:
        stop(proc)


def test_a_version_that_cannot_be_served_says_why_before_listening(registry_home, tmp_path):
    env, settings, versions, _, _ = registry_home
    for ref, extra, words in (("shapes@nowhere", (), "no alias 'nowhere'"), ("absent", (), "no registered model"),
                              ("shapes@staging", ("--format", "openvino"), "ships only its PyTorch checkpoint")):
        done = subprocess.run([sys.executable, "-m", "cli.main", "serve", ref, *extra], env={**os.environ, **env},
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 1 and words in done.stderr and "Traceback" not in done.stderr, done.stderr
    # a stored file that changed after promotion is refused (its sha256 was recorded)
    from tasks.storage import Storage

    v = versions["shapes@staging"]
    storage = Storage(settings=settings)
    storage.write_bytes(b"tampered", v["uri"].removeprefix(storage.url + "/"), "checkpoints/best.pt")
    import shutil

    shutil.rmtree(settings.home / "serve" / v["id"], ignore_errors=True)
    done = subprocess.run([sys.executable, "-m", "cli.main", "serve", "shapes@staging"], env={**os.environ, **env},
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and "does not match the sha256" in done.stderr, done.stderr
