"""A run's files: listed from its manifest once complete, downloaded by manifest name only; no
request path reads anything outside the run's folder."""

from __future__ import annotations

import hashlib
import json

import fsspec.implementations.local as local_fs
import pytest

from api import crud
from tasks.storage import Storage, upload_folder
from tests.aio import run_async

SECRET = b"top secret: must never be served"


@pytest.fixture
def finished_run(db, settings, tmp_path):
    """A completed run with real outputs in local storage, plus secrets around it."""
    run = crud.create_run(db, spec={"model": "yolo11n", "dataset": "shapes-detect"})
    crud.update_run(db, run=run, state="completed")
    out = tmp_path / "outputs"
    (out / "checkpoints").mkdir(parents=True)
    (out / "artifacts").mkdir()
    (out / "checkpoints" / "best.pt").write_bytes(b"weights" * 1000)
    (out / "artifacts" / "results.csv").write_text("epoch,loss\n1,0.5\n")
    (out / "summary.json").write_text(json.dumps({"metrics": {"map50": 0.5}}))
    storage = Storage(settings=settings)
    upload_folder(storage, out, "runs", run.id, run_id=run.id)
    storage.write_bytes(SECRET, "runs", "other-run", "secret.txt")
    storage.write_bytes(SECRET, "secret.txt")
    (settings.home / "secret.txt").write_bytes(SECRET)
    return run


@pytest.fixture
def opened(monkeypatch):
    """Every path the local filesystem opens during the test."""
    paths: list[str] = []
    original = local_fs.LocalFileSystem._open

    def spy(self, path, *args, **kwargs):
        paths.append(str(path))
        return original(self, path, *args, **kwargs)

    monkeypatch.setattr(local_fs.LocalFileSystem, "_open", spy)
    return paths


def test_list_artifacts_from_the_manifest(client, auth, finished_run, settings):
    body = client.get(f"/api/runs/{finished_run.id}/artifacts", headers=auth).json()
    files = {f["path"]: f for f in body["files"]}
    assert set(files) == {"checkpoints/best.pt", "artifacts/results.csv", "summary.json"}
    best = files["checkpoints/best.pt"]
    assert best["size"] == 7000 and best["sha256"] == hashlib.sha256(b"weights" * 1000).hexdigest()
    assert best["url"].endswith(f"/api/runs/{finished_run.id}/artifacts/checkpoints/best.pt")
    assert body["storage_uri"] == f"{settings.storage_url}/runs/{finished_run.id}"


def test_download_streams_the_file(client, auth, finished_run):
    r = client.get(f"/api/runs/{finished_run.id}/artifacts/checkpoints/best.pt", headers=auth)
    assert r.status_code == 200 and r.content == b"weights" * 1000
    assert r.headers["content-length"] == "7000"
    assert r.headers["x-content-sha256"] == hashlib.sha256(r.content).hexdigest()
    assert 'filename="best.pt"' in r.headers["content-disposition"]
    csv = client.get(f"/api/runs/{finished_run.id}/artifacts/artifacts/results.csv", headers=auth)
    assert csv.text == "epoch,loss\n1,0.5\n" and csv.headers["content-type"].startswith("text/csv")


def test_no_artifacts_before_the_manifest(client, auth, db):
    run = crud.create_run(db, spec={"model": "yolo11n", "dataset": "d"})
    for path in ("artifacts", "artifacts/summary.json"):
        r = client.get(f"/api/runs/{run.id}/{path}", headers=auth)
        assert r.status_code == 409 and "no complete outputs yet" in r.json()["detail"]


TRAVERSALS = [
    "../other-run/secret.txt",
    "../../secret.txt",
    "%2e%2e/other-run/secret.txt",
    "%2e%2e/%2e%2e/secret.txt",
    "%2E%2E%2Fother-run%2Fsecret.txt",
    "..%2f..%2fsecret.txt",
    "checkpoints/../../other-run/secret.txt",
    "checkpoints/%2e%2e/%2e%2e/other-run/secret.txt",
    "/etc/passwd",
    "%2Fetc%2Fpasswd",
    "%2F%2Fetc/passwd",
    "..\\..\\secret.txt",
    "..%5c..%5csecret.txt",
    "checkpoints//best.pt",
    "checkpoints/best.pt%00.txt",
    "C:/Windows/win.ini",
    "secret.txt",
    "manifest.json",
]


@pytest.mark.parametrize("path", TRAVERSALS)
def test_traversal_is_refused_and_nothing_outside_the_run_is_read(client, auth, finished_run, settings, opened, path):
    url = f"/api/runs/{finished_run.id}/artifacts/{path}"
    r = client.get(url, headers=auth)
    assert 400 <= r.status_code < 500, (path, r.status_code)
    assert SECRET not in r.content
    run_dir = str(settings.home / "storage" / "runs" / finished_run.id)
    assert all(p.startswith(run_dir + "/") for p in opened), opened


def test_raw_dot_segments_are_refused(client, auth, finished_run):
    """httpx normalises '../' in URLs; send the raw path through the ASGI app instead."""

    async def raw(path: str) -> int:
        status = {}

        async def receive():
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message):
            if message["type"] == "http.response.start":
                status["code"] = message["status"]

        scope = {"type": "http", "method": "GET", "path": path, "raw_path": path.encode(), "query_string": b"",
                 "headers": [(b"authorization", auth["Authorization"].encode())], "http_version": "1.1",
                 "scheme": "http", "server": ("test", 80), "client": ("test", 1), "root_path": "",
                 "app": client.app}
        await client.app(scope, receive, send)
        return status["code"]

    for path in ("../other-run/secret.txt", "checkpoints/../../../secret.txt", "a/./../summary.json"):
        code = run_async(raw, f"/api/runs/{finished_run.id}/artifacts/{path}")
        assert code in (400, 404), (path, code)


def test_tampered_manifest_entries_are_never_served(client, auth, finished_run, settings):
    storage = Storage(settings=settings)
    manifest = storage.read_json("runs", finished_run.id, "manifest.json")
    manifest["files"]["../other-run/secret.txt"] = {"size": len(SECRET), "sha256": "x"}
    manifest["files"]["/etc/passwd"] = {"size": 1, "sha256": "x"}
    storage.write_json(manifest, "runs", finished_run.id, "manifest.json")
    listed = client.get(f"/api/runs/{finished_run.id}/artifacts", headers=auth).json()
    assert {f["path"] for f in listed["files"]} == {"checkpoints/best.pt", "artifacts/results.csv", "summary.json"}
    r = client.get(f"/api/runs/{finished_run.id}/artifacts/%2e%2e/other-run/secret.txt", headers=auth)
    assert r.status_code == 400 and SECRET not in r.content


def test_unknown_file_is_404(client, auth, finished_run):
    r = client.get(f"/api/runs/{finished_run.id}/artifacts/checkpoints/worst.pt", headers=auth)
    assert r.status_code == 404 and "GET /api/runs/" in r.json()["detail"]
