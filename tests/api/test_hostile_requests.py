"""Requests schemathesis found answered with a 500 or an undocumented status (tests/api/
test_schemathesis.py), each pinned down here: they get a 4xx saying what is wrong, on SQLite and
PostgreSQL alike, and nothing is stored."""

from __future__ import annotations

import json

import pytest

from api import crud
from api.security import mint_run_token
from tasks.storage import Storage, upload_folder
from tests.api.fixtures import upload
from tests.integration.conftest import free_port

HUGE = 2**63  # past SQLite's INTEGER, let alone PostgreSQL's int4


@pytest.mark.parametrize("method,path,body", [
    ("get", f"/api/projects/{HUGE}", None),
    ("get", f"/api/datasets/{HUGE}", None),
    ("get", f"/api/datasets/{HUGE}/samples", None),
    ("get", f"/api/datasets?offset={HUGE}", None),
    ("get", f"/api/runs?project_id={HUGE}", None),
    ("get", f"/api/runs?offset={HUGE}", None),
    ("post", "/api/runs", {"spec": {"dataset": "d"}, "project_id": HUGE}),
    ("post", "/api/datasets", {"name": "d", "uri": "file:///nowhere", "project_id": HUGE}),
])
def test_ids_past_the_integer_columns_are_422(client, auth, method, path, body):
    r = client.request(method, path, headers=auth, **({"json": body} if body is not None else {}))
    assert r.status_code == 422, r.text
    assert "less than or equal to 2147483647" in r.json()["detail"]


@pytest.mark.parametrize("project_id", [str(HUGE), "0", "\u00b2"])  # "²".isdigit(), but int() refuses it
def test_upload_project_id_outside_the_integer_column_is_422(client, auth, tmp_path, project_id):
    archive = tmp_path / "d.zip"
    archive.write_bytes(b"PK")
    r = upload(client, auth, "d", archive, project_id=project_id)
    assert r.status_code == 422 and "from 1 to 2147483647" in r.json()["detail"], r.text


@pytest.mark.parametrize("method,path,body", [
    ("post", "/api/projects", {"name": "a\x00b"}),
    ("post", "/api/projects", {"name": "ok", "description": "x\x00"}),
    ("post", "/api/chat", {"message": "hello\x00"}),
    ("post", "/api/runs", {"spec": {"dataset": "d\x00"}}),
    ("post", "/api/runs", {"spec": {"dataset": "d"}, "client_request_id": "r\x00"}),
    ("post", "/api/datasets", {"name": "d\x00", "uri": "file:///nowhere"}),
    ("post", "/api/datasets/sample", {"name": "shapes-detect\x00"}),
    ("get", "/api/runs/r%00", None),
    ("get", "/api/chat/s%00", None),
    ("get", "/api/runs?state=queued%00", None),
])
def test_nul_characters_are_422_and_nothing_is_stored(client, auth, db, method, path, body):
    """PostgreSQL refuses NUL in text with an error (it was a 500 there) and SQLite stored it."""
    r = client.request(method, path, headers=auth, **({"json": body} if body is not None else {}))
    assert r.status_code == 422, r.text
    assert "NUL character" in r.json()["detail"]
    assert crud.list_projects(db) == [] and crud.list_runs(db)[1] == 0


def test_callback_bodies_with_nul_nan_or_oversized_names_are_422(client, db, settings):
    run = crud.create_run(db, spec={"model": "yolo11n", "dataset": "d"})
    headers = {"Authorization": f"Bearer {mint_run_token(run.id, settings)}", "Content-Type": "application/json"}
    bad = [
        '{"epoch": 1, "metrics": {"loss": NaN}}',  # Python's JSON reads NaN; a stored NaN broke every later read
        '{"epoch": 1, "metrics": {"loss": Infinity}}',
        json.dumps({"epoch": 1, "metrics": {"x" * 201: 1.0}}),  # metric_points.name is VARCHAR(200)
        json.dumps({"epoch": 1, "metrics": {"lo\x00ss": 1.0}}),
        json.dumps({"epoch": 1, "epochs": HUGE, "metrics": {}}),
    ]
    for body in bad:
        r = client.post(f"/api/internal/runs/{run.id}/metrics", content=body, headers=headers)
        assert r.status_code == 422, (body, r.text)
    for body in ('{"state": "completed", "metrics": {"map": NaN}}', json.dumps({"state": "failed", "epochs_done": HUGE}),
                 json.dumps({"state": "failed", "error": "boom\x00"})):
        r = client.post(f"/api/internal/runs/{run.id}/done", content=body, headers=headers)
        assert r.status_code == 422, (body, r.text)
    r = client.post(f"/api/internal/runs/{run.id}/events", headers=headers,
                    content=json.dumps({"kind": "resumed", "message": "from epoch 2\x00"}))
    assert r.status_code == 422, r.text
    assert crud.list_metrics(db, run_id=run.id) == []
    db.refresh(run)
    assert run.state == "queued" and not run.events


@pytest.mark.parametrize("content_type,body", [
    ("application/json", b"\x80{}"),  # not UTF-8: FastAPI's own 400
    ("multipart/form-data; boundary=b", b"--b\r\n--b--\r\n"),  # Starlette's 400 "Invalid multipart data"
])
def test_unreadable_bodies_are_the_apis_422(client, auth, db, content_type, body):
    run = crud.create_run(db, spec={"model": "yolo11n", "dataset": "d"})
    path = "/api/projects" if content_type.startswith("application/json") else f"/api/runs/{run.id}/predict"
    r = client.post(path, content=body, headers={**auth, "Content-Type": content_type})
    assert r.status_code == 422, r.text
    assert r.json()["detail"].startswith("the request body could not be read") and r.json()["errors"]


def test_an_empty_session_id_starts_a_conversation(client, auth):
    """"" was taken as a session to continue and as none to create: a NOT NULL violation, 500."""
    r = client.post("/api/chat", json={"session_id": "", "message": "hi"}, headers=auth)
    assert r.status_code == 200, r.text
    history = client.get(f"/api/chat/{r.json()['session_id']}", headers=auth).json()
    assert [m["role"] for m in history["messages"]] == ["user", "assistant"]


def test_s3_uri_without_credentials_is_422_naming_them(client, auth, settings, monkeypatch):
    """botocore's NoCredentialsError was a 500."""
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/credentials")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent/config")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # no instance-metadata lookup either
    settings.s3_endpoint_url = f"http://127.0.0.1:{free_port()}"  # nothing listens: no request leaves
    r = client.post("/api/datasets", json={"name": "cracks", "uri": "s3://acme/cracks"}, headers=auth)
    assert r.status_code == 422, r.text
    assert "no S3 credentials" in r.json()["detail"] and "AWS_ACCESS_KEY_ID" in r.json()["detail"]
    assert client.get("/api/datasets", headers=auth).json()["total"] == 0


def test_a_checkpoint_vtp_does_not_load_is_409_for_predict_and_export(client, auth, db, settings, tmp_path):
    """Unloadable (here: not a checkpoint at all) was a 500 from inside ultralytics."""
    spec = {"model": "yolo11n", "dataset": "d", "task": "detect", "framework": "ultralytics", "image_size": 64}
    run = crud.create_run(db, spec=spec)
    crud.update_run(db, run=run, state="completed")
    out = tmp_path / "outputs"
    (out / "checkpoints").mkdir(parents=True)
    (out / "checkpoints" / "best.pt").write_bytes(b"not a checkpoint")
    (out / "summary.json").write_text(json.dumps({"spec": spec}))
    upload_folder(Storage(settings=settings), out, "runs", run.id, run_id=run.id)
    image = tmp_path / "x.png"
    from PIL import Image

    Image.new("RGB", (32, 32)).save(image)
    r = client.post(f"/api/runs/{run.id}/predict", files={"file": ("x.png", image.read_bytes())}, headers=auth)
    assert r.status_code == 409, r.text
    assert "best checkpoint cannot be used: checkpoints/best.pt is not a PyTorch checkpoint vtp can read safely" in \
        r.json()["detail"]
    r = client.post(f"/api/runs/{run.id}/export?format=onnx", headers=auth)
    assert r.status_code == 409 and "is not a PyTorch checkpoint vtp can read safely" in r.json()["detail"], r.text
    unknown = client.post("/api/runs/nope/export", headers=auth)
    assert unknown.status_code == 404
