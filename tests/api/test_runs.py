"""Runs through the API with Prefect unreachable (the stack tests submit for real): validation,
storage of failed submissions, idempotency, listing, cancel, retry, metrics."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from api import crud
from api.models import Run
from tasks.dataset_ingest import ingest_sample
from tasks.storage import Storage

SPEC = {"model": "yolo11n", "dataset": "shapes-detect", "epochs": 2, "image_size": 128}


@pytest.fixture
def registered(settings):
    ingest_sample("shapes-detect", n_train=3, n_val=2, image_size=64, storage=Storage(settings=settings))
    return "shapes-detect"


def make_run(db, *, state="queued", flow_run_id=None, created=None, project_id=None, spec=None) -> Run:
    run = crud.create_run(db, spec=spec or {**SPEC, "task": "detect", "framework": "ultralytics"},
                          project_id=project_id)
    return crud.update_run(db, run=run, state=state, prefect_flow_run_id=flow_run_id,
                           created=created or run.created)


def test_create_with_prefect_down_is_503_and_the_run_is_kept_as_failed(client, auth, registered, db):
    r = client.post("/api/runs", json={"spec": SPEC}, headers=auth)
    assert r.status_code == 503, r.text
    body = r.json()
    assert "Prefect is not reachable" in body["detail"] and "vtp up" in body["detail"]
    run = client.get(f"/api/runs/{body['run_id']}", headers=auth).json()
    assert run["state"] == "failed" and run["error"].startswith("not submitted: Prefect is not reachable")
    assert run["finished"] is not None and run["prefect_flow_run_id"] is None


def test_partial_spec_gets_the_defaults(client, auth, registered):
    body = client.post("/api/runs", json={"spec": {"dataset": "shapes-detect", "task": "detect"}}, headers=auth).json()
    spec = client.get(f"/api/runs/{body['run_id']}", headers=auth).json()["spec"]
    assert spec["model"] == "yolo11n" and spec["framework"] == "ultralytics"
    assert spec["epochs"] == 10 and spec["image_size"] == 640 and spec["batch_size"] == 16


def test_client_request_id_makes_submission_idempotent(client, auth, registered):
    first = client.post("/api/runs", json={"spec": SPEC, "client_request_id": "req-1"}, headers=auth)
    again = client.post("/api/runs", json={"spec": SPEC, "client_request_id": "req-1"}, headers=auth)
    assert first.status_code == 503 and again.status_code == 200
    assert again.json()["id"] == first.json()["run_id"] and again.json()["client_request_id"] == "req-1"
    assert client.get("/api/runs", headers=auth).json()["total"] == 1


@pytest.mark.parametrize("spec,words", [
    ({"model": "yolo11q", "dataset": "shapes-detect"}, "model='yolo11q'"),
    ({"model": "yolo11n", "dataset": "shapes-detect", "epochs": 0}, "epochs=0"),
    ({"model": "yolo11n", "dataset": "shapes-detect", "image_size": 100}, "image_size=100"),
    ({"model": "yolo11n", "dataset": "shapes-detect", "epoch": 3}, "epoch is not a TrainSpec field"),
    ({"model": "yolo11n"}, "dataset is required"),
])
def test_invalid_spec_is_422_naming_the_field(client, auth, registered, spec, words):
    r = client.post("/api/runs", json={"spec": spec}, headers=auth)
    assert r.status_code == 422, r.text
    assert words in r.json()["detail"] and r.json()["errors"]
    assert client.get("/api/runs", headers=auth).json()["total"] == 0


def test_unknown_dataset_is_422_listing_the_registered_ones(client, auth, registered):
    r = client.post("/api/runs", json={"spec": {**SPEC, "dataset": "shapes-detekt"}}, headers=auth)
    assert r.status_code == 422
    assert "not registered" in r.json()["detail"] and "shapes-detect" in r.json()["detail"]


def test_unknown_project_is_422(client, auth, registered):
    r = client.post("/api/runs", json={"spec": SPEC, "project_id": 42}, headers=auth)
    assert r.status_code == 422 and "project_id=42" in r.json()["detail"]


def test_list_newest_first_with_filters_and_paging(client, auth, db):
    project = crud.create_project(db, name="p")
    now = datetime.now(UTC)
    old = make_run(db, state="completed", created=now - timedelta(hours=2), project_id=project.id)
    mid = make_run(db, state="failed", created=now - timedelta(hours=1))
    new = make_run(db, state="queued", created=now)
    listed = client.get("/api/runs", headers=auth).json()
    assert [r["id"] for r in listed["items"]] == [new.id, mid.id, old.id] and listed["total"] == 3
    assert [r["id"] for r in client.get("/api/runs?state=failed", headers=auth).json()["items"]] == [mid.id]
    assert [r["id"] for r in client.get(f"/api/runs?project_id={project.id}", headers=auth).json()["items"]] == [old.id]
    page = client.get("/api/runs?limit=1&offset=1", headers=auth).json()
    assert [r["id"] for r in page["items"]] == [mid.id] and page["total"] == 3
    bad = client.get("/api/runs?state=sleeping", headers=auth)
    assert bad.status_code == 422 and "state" in bad.json()["detail"]


def test_get_unknown_run_is_404(client, auth):
    for path in ("", "/metrics", "/artifacts", "/cancel", "/retry"):
        method = "post" if path in ("/cancel", "/retry") else "get"
        r = getattr(client, method)(f"/api/runs/{uuid.uuid4()}{path}", headers=auth)
        assert r.status_code == 404 and "GET /api/runs" in r.json()["detail"], path


def test_reading_a_run_tolerates_prefect_being_down(client, auth, db):
    run = make_run(db, state="running", flow_run_id=str(uuid.uuid4()))
    r = client.get(f"/api/runs/{run.id}", headers=auth)
    assert r.status_code == 200 and r.json()["state"] == "running"
    assert client.get("/api/runs", headers=auth).status_code == 200


def test_cancel_a_run_that_never_reached_prefect(client, auth, db):
    run = make_run(db, state="queued")
    r = client.post(f"/api/runs/{run.id}/cancel", headers=auth)
    assert r.status_code == 202 and r.json()["state"] == "cancelled" and r.json()["finished"]
    assert r.json()["cancel_requested"] is True
    again = client.post(f"/api/runs/{run.id}/cancel", headers=auth)
    assert again.status_code == 409 and "already cancelled" in again.json()["detail"]


def test_cancel_with_prefect_down_is_503(client, auth, db):
    run = make_run(db, state="running", flow_run_id=str(uuid.uuid4()))
    r = client.post(f"/api/runs/{run.id}/cancel", headers=auth)
    assert r.status_code == 503 and "could not be cancelled" in r.json()["detail"]
    assert "told to stop at its next heartbeat" in r.json()["detail"]
    assert client.get(f"/api/runs/{run.id}", headers=auth).json()["cancel_requested"] is True


def test_retry_needs_an_ended_run_and_links_the_new_one(client, auth, db, registered):
    running = make_run(db, state="running")
    assert client.post(f"/api/runs/{running.id}/retry", headers=auth).status_code == 409
    failed = make_run(db, state="failed")
    r = client.post(f"/api/runs/{failed.id}/retry", headers=auth)
    assert r.status_code == 503  # the new run is stored, but Prefect is down
    new = client.get(f"/api/runs/{r.json()['run_id']}", headers=auth).json()
    assert new["retry_of"] == failed.id and new["id"] != failed.id
    assert {k: new["spec"][k] for k in failed.spec} == failed.spec


def test_metrics_are_recorded_idempotently_and_listed_by_epoch(client, auth, db):
    run = make_run(db, state="running")
    crud.record_metrics(db, run_id=run.id, epoch=2, metrics={"loss": 0.5, "map50": 0.3})
    crud.record_metrics(db, run_id=run.id, epoch=1, metrics={"loss": 0.9, "map50": 0.1})
    crud.record_metrics(db, run_id=run.id, epoch=2, metrics={"loss": 0.4})  # a retried callback
    crud.record_metric(db, run_id=run.id, epoch=1, name="loss", value=0.9)
    body = client.get(f"/api/runs/{run.id}/metrics", headers=auth).json()
    assert body["run_id"] == run.id
    assert [(p["epoch"], p["name"], p["value"]) for p in body["points"]] == [
        (1, "loss", 0.9), (1, "map50", 0.1), (2, "loss", 0.4), (2, "map50", 0.3)]


def test_metric_points_go_with_their_run(db):
    run = make_run(db)
    crud.record_metrics(db, run_id=run.id, epoch=1, metrics={"loss": 1.0})
    db.delete(run)
    db.commit()
    assert crud.list_metrics(db, run_id=run.id) == []
