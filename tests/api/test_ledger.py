"""One ledger for every run: readable run names, ``POST /api/runs/register`` (the push side) and the
adoption of flow runs started outside the API (the pull side, api/ledger.py), with real Prefect
flow-run objects and real storage. The reconciler against a live Prefect server is in
tests/integration/test_ledger.py."""

from __future__ import annotations

import json
import logging
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from api import crud, ledger
from api.models import Run
from tasks import ledger as ledger_client
from tasks.storage import Storage, upload_folder

SPEC = {"model": "yolo11n", "dataset": "shapes-detect", "epochs": 2, "image_size": 128}


def body(run_id: str | None = None, **over):
    run_id = run_id or str(uuid.uuid4())
    return {"run_id": run_id, "spec": SPEC, "state": "completed", "final_metrics": {"metrics/mAP50(B)": 0.4},
            "checkpoint_uri": f"file:///tmp/vtp/runs/{run_id}/checkpoints/best.pt", "epochs_done": 2, **over}


# -- names --------------------------------------------------------------------------------------


def test_names_count_runs_per_model_and_dataset(db):
    names = [crud.create_run(db, spec=SPEC).name for _ in range(3)]
    assert names == ["yolo11n-shapes-detect-1", "yolo11n-shapes-detect-2", "yolo11n-shapes-detect-3"]
    assert crud.create_run(db, spec={**SPEC, "model": "resnet18"}).name == "resnet18-shapes-detect-1"
    # another dataset whose name extends this one's does not count
    assert crud.create_run(db, spec={**SPEC, "dataset": "shapes-detect-big"}).name == "yolo11n-shapes-detect-big-1"
    assert crud.create_run(db, spec=SPEC).name == "yolo11n-shapes-detect-4"


@pytest.mark.parametrize("spec,name", [
    ({"model": "facebook/DETR_resnet-50", "dataset": "s3://bucket/My Data/"}, "detr-resnet-50-my-data-1"),
    ({"model": "hf-hub:timm/resnet18", "dataset": "file:///srv/x/cracks.v2"}, "resnet18-cracks.v2-1"),
    ({"model": "Ünïcode!!", "dataset": "--"}, "n-code-data-1"),
    ({"model": "m" * 200, "dataset": "d" * 200}, "m" * 60 + "-1"),
])
def test_names_are_sanitized_and_bounded(db, spec, name):
    run = crud.create_run(db, spec=spec)
    assert run.name == name and len(run.name) <= 80
    assert set(run.name) <= set("abcdefghijklmnopqrstuvwxyz0123456789.-")


def test_a_run_is_found_by_id_or_name(client, auth, db):
    run = crud.create_run(db, spec=SPEC)
    by_name = client.get(f"/api/runs/{run.name}", headers=auth)
    assert by_name.status_code == 200 and by_name.json()["id"] == run.id
    assert by_name.json()["name"] == run.name and by_name.json()["origin"] == "api"
    assert client.get(f"/api/runs/{run.id}", headers=auth).json()["name"] == run.name
    assert client.get(f"/api/runs/{run.name}/metrics", headers=auth).json()["run_id"] == run.id
    listed = client.get("/api/runs", headers=auth).json()["items"]
    assert [r["name"] for r in listed] == [run.name]
    missing = client.get("/api/runs/yolo11n-shapes-detect-99", headers=auth)
    assert missing.status_code == 404 and "no run has the id or name" in missing.json()["detail"]


def test_the_migration_names_existing_runs_in_creation_order(tmp_path):
    from sqlalchemy import text

    from api.db import make_engine, migrate

    url = f"sqlite:///{tmp_path / 'names.db'}"
    migrate(url, revision="0004")
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            for run_id, when in (("b", "2026-01-02"), ("a", "2026-01-01"), ("c", "2026-01-03")):
                conn.execute(text("INSERT INTO runs (id, spec, state, created, epochs_done) VALUES "
                                  "(:id, :spec, 'completed', :when, 0)"),
                             {"id": run_id, "when": when,
                              "spec": '{"model": "yolo11n", "dataset": "shapes-detect"}' if run_id != "c" else "{}"})
        migrate(url)
        with engine.connect() as conn:
            rows = dict(conn.execute(text("SELECT id, name FROM runs")).all())
            origins = set(conn.execute(text("SELECT origin FROM runs")).scalars())
    finally:
        engine.dispose()
    assert rows == {"a": "yolo11n-shapes-detect-1", "b": "yolo11n-shapes-detect-2", "c": "run-data-1"}
    assert origins == {"api"}


# -- push: POST /api/runs/register --------------------------------------------------------------


def test_register_needs_an_api_token(client, auth, db):
    assert client.post("/api/runs/register", json=body()).status_code == 401
    assert client.post("/api/runs/register", json=body(), headers={"Authorization": "Bearer nope"}).status_code == 401
    assert db.query(Run).count() == 0


def test_register_stores_the_run_once(client, auth, db):
    sent = body()
    first = client.post("/api/runs/register", json=sent, headers=auth)
    assert first.status_code == 201, first.text
    run = first.json()
    assert run["id"] == sent["run_id"] and run["name"] == "yolo11n-shapes-detect-1" and run["origin"] == "register"
    assert run["state"] == "completed" and run["finished"] is not None
    assert run["final_metrics"] == {"metrics/mAP50(B)": 0.4} and run["checkpoint_uri"] == sent["checkpoint_uri"]
    assert run["epochs_done"] == 2 and run["spec"]["framework"] == "ultralytics"  # the spec's defaults filled in
    again = client.post("/api/runs/register", json={**sent, "final_metrics": {"other": 1.0}}, headers=auth)
    assert again.status_code == 200 and again.json() == run  # a settled run is not changed
    assert client.get("/api/runs", headers=auth).json()["total"] == 1
    assert client.get(f"/api/runs/{run['name']}", headers=auth).json()["id"] == run["id"]


def test_register_ends_an_active_run(client, auth, db):
    run = crud.create_run(db, spec=SPEC)
    r = client.post("/api/runs/register", json=body(run.id, state="failed", final_metrics=None,
                                                       checkpoint_uri=None, error="CUDA out of memory"), headers=auth)
    assert r.status_code == 200, r.text
    assert r.json()["state"] == "failed" and r.json()["error"] == "CUDA out of memory" and r.json()["origin"] == "api"
    crashed = crud.create_run(db, spec=SPEC, state="running")
    crud.finish_run(db, run=crashed, state="crashed", by=ledger.Actor.REAPER, error="silent")
    assert client.post("/api/runs/register", json=body(crashed.id), headers=auth).json()["state"] == "completed"
    ended = client.get(f"/api/runs/{crashed.id}", headers=auth).json()
    assert ended["error"] == "silent" and ended["final_metrics"] == {"metrics/mAP50(B)": 0.4}


@pytest.mark.parametrize("change,words", [
    ({"spec": {**SPEC, "model": "yolo11q"}}, "model='yolo11q'"),
    ({"spec": {**SPEC, "epochs": 0}}, "epochs=0"),
    ({"spec": {"model": "yolo11n"}}, "dataset"),
    ({"state": "sleeping"}, "state"),
    ({"run_id": "../../etc"}, "run_id"),
    ({"run_id": "x" * 37}, "run_id"),
    ({"epochs_done": -1}, "epochs_done"),
    ({"epochs_done": 10**7}, "epochs_done"),
    ({"final_metrics": {"m" * 201: 1.0}}, "final_metrics"),
    ({"final_metrics": {f"m{i}": 1.0 for i in range(501)}}, "final_metrics"),
    ({"checkpoint_uri": "https://evil.example/best.pt"}, "not a storage URI"),
    ({"checkpoint_uri": "s3://b/" + "k" * 2000}, "checkpoint_uri"),
    ({"error": "e" * 20_001}, "error"),
    ({"owner": "me"}, "owner"),
    ({"spec": {**SPEC, "dataset": "a\u0000b"}}, "NUL"),
])
def test_register_validates_the_spec_and_bounds_every_value(client, auth, db, change, words):
    r = client.post("/api/runs/register", json={**body(), **change}, headers=auth)
    assert r.status_code == 422, r.text
    assert words in r.json()["detail"]
    assert db.query(Run).count() == 0


def test_the_client_registers_a_summary_and_never_raises(client, auth, token, monkeypatch, caplog):
    """tasks.ledger.register_run against the app (through the TestClient's transport) and against
    a port where nothing listens."""
    import httpx

    summary = {"run_id": str(uuid.uuid4()), "state": "completed", "metrics": {"acc": 0.9, "bad": float("nan")},
               "checkpoint_uri": "file:///tmp/vtp/runs/x/checkpoints/best.pt", "epochs_completed": 2}
    spec = {"model": "resnet18", "dataset": "shapes-cls", "epochs": 2, "image_size": 64}
    sent = ledger_client.registration(summary, spec, prefect_flow_run_id="f1")
    assert sent["final_metrics"] == {"acc": 0.9} and sent["epochs_done"] == 2 and sent["prefect_flow_run_id"] == "f1"

    def post(url, **kw):  # the real request, served by the app under test
        return client.post(url.replace("http://api.test", ""), json=kw["json"], headers=kw["headers"])

    monkeypatch.setattr(httpx, "post", post)
    assert ledger_client.register_run("http://api.test", token, summary, spec)
    assert client.get(f"/api/runs/{summary['run_id']}", headers=auth).json()["name"] == "resnet18-shapes-cls-1"
    assert ledger_client.register_run("http://api.test", token, summary, spec)  # idempotent
    with caplog.at_level(logging.WARNING, logger="vtp.ledger"):
        assert not ledger_client.register_run("http://api.test", "wrong", summary, spec)
        assert "HTTP 401" in caplog.text
        assert not ledger_client.register_run("http://api.test", token, {"state": "completed"}, spec)
    monkeypatch.undo()
    from tests.integration.conftest import free_port

    assert not ledger_client.register_run(f"http://127.0.0.1:{free_port()}", token, summary, spec, timeout_s=2)


# -- pull: adopting flow runs -------------------------------------------------------------------


def flow_run(state, parameters, **fields):
    from prefect.client.schemas.objects import FlowRun

    return FlowRun(id=uuid.uuid4(), flow_id=uuid.uuid4(), name="crimson-owl", state=state, parameters=parameters,
                   **fields)


def test_adopt_a_finished_flow_run_with_its_results(db, settings, tmp_path):
    from prefect.states import Completed

    started = datetime.now(UTC) - timedelta(minutes=5)
    fr = flow_run(Completed(), {"spec": SPEC}, start_time=started, end_time=started + timedelta(minutes=2),
                  run_count=1, expected_start_time=started)
    run_id = str(fr.id)  # no run_id parameter: the flow used its flow-run id
    out = tmp_path / "out"
    (out / "artifacts").mkdir(parents=True)
    checkpoint = f"{settings.storage_url}/runs/{run_id}/checkpoints/best.pt"
    (out / "summary.json").write_text(
        f'{{"metrics": {{"metrics/mAP50(B)": 0.42}}, "checkpoint_uri": "{checkpoint}", "epochs_completed": 2}}')
    (out / "artifacts" / "results.csv").write_text(
        "epoch, train/box_loss, metrics/mAP50(B)\n1, 1.5, 0.2\n2, 1.2, 0.42\nnot-a-number, 1, 1\n")
    upload_folder(Storage(settings=settings), out, "runs", run_id)
    run = ledger.adopt(db, fr, settings=settings)
    db.refresh(run)
    assert run.id == run_id and run.prefect_flow_run_id == run_id and run.origin == "prefect"
    assert run.name == "yolo11n-shapes-detect-1" and run.state == "completed" and run.attempt == 1
    assert run.final_metrics == {"metrics/mAP50(B)": 0.42} and run.checkpoint_uri == checkpoint and run.epochs_done == 2
    assert abs((run.finished - fr.end_time).total_seconds()) < 1
    points = {(p.epoch, p.name): p.value for p in crud.list_metrics(db, run_id=run_id)}
    assert points == {(1, "train/box_loss"): 1.5, (1, "metrics/mAP50(B)"): 0.2,
                      (2, "train/box_loss"): 1.2, (2, "metrics/mAP50(B)"): 0.42}


def test_adopt_maps_states_and_skips_what_it_cannot_take(db, settings, caplog):
    from prefect.states import Cancelling, Failed, Running, Scheduled

    running = ledger.adopt(db, flow_run(Running(), {"spec": SPEC, "run_id": "my-run"}), settings=settings)
    assert running.id == "my-run" and running.state == "running" and running.finished is None
    failed = ledger.adopt(db, flow_run(Failed(message="DatasetError: no images"), {"spec": SPEC}), settings=settings)
    assert failed.state == "failed" and failed.error == "DatasetError: no images" and failed.finished is not None
    assert failed.name == "yolo11n-shapes-detect-2"
    assert ledger.adopt(db, flow_run(Cancelling(), {"spec": SPEC}), settings=settings).state == "running"
    assert ledger.adopt(db, flow_run(Scheduled(), {"spec": SPEC}), settings=settings).state == "queued"
    with caplog.at_level(logging.WARNING, logger="vtp.api.ledger"):
        assert ledger.adopt(db, flow_run(Running(), {"spec": {**SPEC, "model": "yolo11q"}}), settings=settings) is None
        assert ledger.adopt(db, flow_run(Running(), {}), settings=settings) is None
    assert "its spec does not validate" in caplog.text and "yolo11q" in caplog.text
    # a flow run going on with a known run (vtp train --resume) is linked, not adopted again
    api_run = crud.create_run(db, spec=SPEC)
    resumed = flow_run(Running(), {"spec": SPEC, "run_id": api_run.id})
    assert ledger.adopt(db, resumed, settings=settings) is None
    db.refresh(api_run)
    assert api_run.prefect_flow_run_id == str(resumed.id) and db.query(Run).count() == 5


def test_reconcile_leaves_everything_alone_while_prefect_is_down(db, settings):
    since = datetime.now(UTC)
    assert ledger.reconcile(db, settings, since=since) == ([], since)
    assert db.query(Run).count() == 0


def test_a_finished_run_that_never_reported_is_adopted_from_storage(db, settings, tmp_path):
    """`vtp train --local` while no API was up: its outputs are in storage, and the API adopts the
    run on its next look there; folders without a finished run are read once and left alone."""
    storage = Storage(settings=settings)
    checkpoint = f"{settings.storage_url}/runs/local-run-1/checkpoints/best.pt"
    done = tmp_path / "done"
    done.mkdir()
    (done / "summary.json").write_text(json.dumps({
        "run_id": "local-run-1", "state": "completed", "spec": {**SPEC, "framework": "ultralytics", "task": "detect"},
        "metrics": {"metrics/mAP50-95(B)": 0.31, "bad": float("nan")}, "checkpoint_uri": checkpoint,
        "epochs_completed": 2}))
    upload_folder(storage, done, "runs", "local-run-1")
    storage.write_json({"epoch": 1}, "runs", "unfinished-run", "resume", "state.json")  # no manifest: not finished
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "summary.json").write_text(json.dumps({"spec": {**SPEC, "model": "yolo11q"}, "metrics": {}}))
    upload_folder(storage, bad, "runs", "bad-spec-run")
    known = crud.create_run(db, spec=SPEC)
    upload_folder(storage, done, "runs", known.id)  # already in the ledger: untouched

    skip: set[str] = set()
    assert ledger.adopt_from_storage(db, settings, skip=skip) == ["local-run-1"]
    run = db.get(Run, "local-run-1")
    assert run.origin == "register" and run.state == "completed" and run.name == "yolo11n-shapes-detect-2"
    assert run.final_metrics == {"metrics/mAP50-95(B)": 0.31} and run.checkpoint_uri == checkpoint
    assert run.epochs_done == 2
    assert skip == {"unfinished-run", "bad-spec-run"}
    assert ledger.adopt_from_storage(db, settings, skip=skip) == []  # nothing twice, nothing re-read
    assert db.query(Run).count() == 2


def test_a_run_that_reports_its_end_by_register_gets_its_epochs(db, settings, tmp_path):
    """An adopted run (no run token, so no epoch posts) that ends with a register call: its epochs come
    from its results.csv, as for a run adopted after it finished (seen in the every-way-in test)."""
    from api.schemas import RunRegister

    run = crud.create_run(db, spec=SPEC, state="running", origin="prefect")
    out = tmp_path / "out"
    (out / "artifacts").mkdir(parents=True)
    (out / "artifacts" / "results.csv").write_text("epoch, metrics/mAP50(B)\n1, 0.2\n2, 0.42\n")
    upload_folder(Storage(settings=settings), out, "runs", run.id)
    body = RunRegister(run_id=run.id, spec=SPEC, state="completed", final_metrics={"metrics/mAP50(B)": 0.42},
                       epochs_done=2)
    ledger.register(db, body=body, settings=settings)
    db.refresh(run)
    assert run.state == "completed" and run.final_metrics == {"metrics/mAP50(B)": 0.42}
    points = {(p.epoch, p.name): p.value for p in crud.list_metrics(db, run_id=run.id)}
    assert points == {(1, "metrics/mAP50(B)"): 0.2, (2, "metrics/mAP50(B)"): 0.42}
    ledger.register(db, body=body, settings=settings)  # again: nothing twice
    assert len(crud.list_metrics(db, run_id=run.id)) == 2
