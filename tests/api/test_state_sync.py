"""Prefect flow-run states mirrored onto runs (apply_flow_run), with real Prefect state objects."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from api import crud
from api.prefect_runs import apply_flow_run
from tasks.storage import Storage


def flow_run(state, **fields):
    from prefect.client.schemas.objects import FlowRun

    return FlowRun(id=uuid.uuid4(), flow_id=uuid.uuid4(), state=state, **fields)


@pytest.fixture
def run(db):
    return crud.create_run(db, spec={"model": "yolo11n", "dataset": "d"})


@pytest.mark.parametrize("factory,expected", [
    ("Scheduled", "queued"), ("Pending", "pending"), ("Running", "running"), ("Paused", "pending"),
    ("Cancelled", "cancelled"), ("Crashed", "crashed"),
])
def test_states_map(db, settings, run, factory, expected):
    import prefect.states as states

    crud.update_run(db, run=run, state="queued" if expected != "queued" else "pending")
    assert apply_flow_run(db, run, flow_run(getattr(states, factory)()), settings=settings)
    assert run.state == expected
    assert (run.finished is not None) == (expected in ("cancelled", "crashed"))


def test_cancelling_leaves_the_state_alone(db, settings, run):
    from prefect.states import Cancelling

    crud.update_run(db, run=run, state="running")
    assert not apply_flow_run(db, run, flow_run(Cancelling()), settings=settings)
    assert run.state == "running"


def test_failed_keeps_the_reason_and_times(db, settings, run):
    from prefect.states import Failed

    started = datetime.now(UTC) - timedelta(minutes=3)
    ended = datetime.now(UTC) - timedelta(minutes=1)
    apply_flow_run(db, run, flow_run(Failed(message="DatasetError: class id 7 out of range"),
                                     start_time=started, end_time=ended), settings=settings)
    db.refresh(run)
    assert run.state == "failed" and run.error == "DatasetError: class id 7 out of range"
    assert abs((run.started - started).total_seconds()) < 1 and abs((run.finished - ended).total_seconds()) < 1


def test_completed_takes_metrics_and_checkpoint_from_the_summary(db, settings, run, tmp_path):
    from prefect.states import Completed

    from tasks.storage import upload_folder

    out = tmp_path / "out"
    out.mkdir()
    checkpoint = f"{settings.storage_url}/runs/{run.id}/checkpoints/best.pt"
    (out / "summary.json").write_text(
        f'{{"metrics": {{"metrics/mAP50(B)": 0.42}}, "checkpoint_uri": "{checkpoint}", "epochs_completed": 2}}')
    upload_folder(Storage(settings=settings), out, "runs", run.id)
    apply_flow_run(db, run, flow_run(Completed()), settings=settings)
    db.refresh(run)
    assert run.state == "completed" and run.final_metrics == {"metrics/mAP50(B)": 0.42}
    assert run.checkpoint_uri == checkpoint and run.epochs_done == 2


def test_completed_without_outputs_keeps_what_callbacks_sent(db, settings, run):
    from prefect.states import Completed

    crud.update_run(db, run=run, final_metrics={"acc": 0.9}, checkpoint_uri="s3://b/best.pt", epochs_done=3)
    apply_flow_run(db, run, flow_run(Completed()), settings=settings)
    assert (run.state, run.final_metrics, run.checkpoint_uri, run.epochs_done) == (
        "completed", {"acc": 0.9}, "s3://b/best.pt", 3)


def test_prefect_refusals_are_told_apart_from_outages():
    import httpx

    from api.prefect_runs import _refused

    request = httpx.Request("POST", "http://prefect/api/deployments/x/create_flow_run")

    def status_error(code: int, **kwargs) -> httpx.HTTPStatusError:
        response = httpx.Response(code, request=request, **kwargs)
        return httpx.HTTPStatusError("x", request=request, response=response)

    assert _refused(status_error(409, json={"detail": "Validation failed for field 'spec'"})) == \
        "Validation failed for field 'spec'"
    assert _refused(status_error(422, text="not json")) == "not json"
    assert _refused(status_error(503, json={"detail": "busy"})) is None
    assert _refused(httpx.ConnectError("refused", request=request)) is None


def test_a_crashed_run_prefect_retries_comes_back_with_its_history(db, settings, run):
    """Crashed is not final: when Prefect schedules the run again (vtp's crash-retry automation) the
    run goes back to queued, loses its end time and error, and its history says it is retried."""
    from prefect.states import AwaitingRetry, Crashed

    crud.update_run(db, run=run, state="running")
    assert apply_flow_run(db, run, flow_run(Crashed(message="process killed")), settings=settings)
    assert run.state == "crashed" and run.finished is not None and run.error
    assert apply_flow_run(db, run, flow_run(AwaitingRetry(), run_count=1), settings=settings)
    assert run.state == "queued" and run.finished is None and run.error is None
    assert [e["kind"] for e in run.events] == ["retrying"] and run.events[0]["attempt"] == 2
    assert crud.touch_live_run(db, run_id=run.id) is not None  # its trainer's heartbeat is taken again


def test_stale_runs_are_marked_and_crashed(db, settings, run):
    """No heartbeat for VTP_STALE_AFTER_S: the run is marked stale in its history and crashed (here
    it has no flow run; with one, Prefect is told first, and an unreachable Prefect leaves it alone)."""
    from api.stale import check_stale

    settings.stale_after_s = 5
    crud.update_run(db, run=run, state="running", last_heartbeat=datetime.now(UTC) - timedelta(seconds=60),
                    epochs_done=3)
    fresh = crud.create_run(db, spec={"model": "yolo11n", "dataset": "d"})
    crud.update_run(db, run=fresh, state="running", last_heartbeat=datetime.now(UTC))
    unreachable = crud.create_run(db, spec={"model": "yolo11n", "dataset": "d"})
    crud.update_run(db, run=unreachable, state="running", prefect_flow_run_id=str(uuid.uuid4()),
                    last_heartbeat=datetime.now(UTC) - timedelta(seconds=60))
    settings.prefect_api_url = "http://127.0.0.1:9/api"  # nothing listens: Prefect is down

    assert check_stale(db, settings) == [run.id]
    assert run.state == "crashed" and "no heartbeat from the trainer" in run.error
    assert run.events[-1]["kind"] == "stale" and run.events[-1]["epoch"] == 3
    assert fresh.state == "running" and unreachable.state == "running"
