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
