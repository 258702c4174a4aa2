"""Two attempts of one run never both report: once a retry's attempt has reported, or the API has
declared an attempt crashed (stale), that attempt's callbacks are refused as superseded (issue 12)."""

from __future__ import annotations

from datetime import timedelta

from api import crud
from api.models import Run, utcnow
from api.security import mint_run_token
from api.stale import check_stale


def post(client, run_id: str, kind: str, token: str, attempt: int | None, body: dict | None = None):
    headers = {"Authorization": f"Bearer {token}"}
    if attempt is not None:
        headers["X-Vtp-Attempt"] = str(attempt)
    return client.post(f"/api/internal/runs/{run_id}/{kind}", json=body or {}, headers=headers)


def test_stale_attempt_is_fenced_and_its_retry_takes_over(client, db, settings):
    run = crud.create_run(db, spec={"model": "yolo11n", "dataset": "d", "epochs": 5})
    token = mint_run_token(run.id, settings)
    assert post(client, run.id, "heartbeat", token, 1).status_code == 200
    db.refresh(run)
    assert (run.state, run.attempt) == ("running", 1)

    # Attempt 1 falls silent for longer than VTP_STALE_AFTER_S: the API declares it crashed.
    db.query(Run).filter(Run.id == run.id).update({"last_heartbeat": utcnow() - timedelta(seconds=settings.stale_after_s + 5)})
    db.commit()
    assert check_stale(db, settings) == [run.id]

    # It was only cut off, and comes back: every callback of it is refused as superseded.
    for kind, body in (("heartbeat", None), ("metrics", {"epoch": 2, "metrics": {"loss": 1.0}}),
                       ("done", {"state": "completed", "metrics": {"acc": 0.99}, "checkpoint_uri": "file:///x"})):
        r = post(client, run.id, kind, token, 1, body)
        assert r.status_code == 409 and "superseded" in r.text, (kind, r.text)
    db.refresh(run)
    assert run.state == "crashed" and run.final_metrics is None and run.checkpoint_uri is None

    # The retry (attempt 2) revives the run; attempt 1 stays fenced off.
    assert post(client, run.id, "heartbeat", token, 2).status_code == 200
    assert post(client, run.id, "heartbeat", token, 1).status_code == 409
    r = post(client, run.id, "metrics", token, 2, {"epoch": 2, "metrics": {"loss": 0.5}})
    assert r.status_code == 200
    db.refresh(run)
    assert (run.state, run.attempt, run.epochs_done) == ("running", 2, 2)
    assert client.get(f"/api/runs/{run.id}", headers={"Authorization": f"Bearer {token}"}).status_code in (401, 403)


def test_prefect_retry_while_the_old_attempt_lives(client, db, settings):
    """Prefect retried the run (attempt 2 reports) while attempt 1 still runs: attempt 1 is told to stop."""
    run = crud.create_run(db, spec={"model": "resnet18", "dataset": "d", "epochs": 5})
    token = mint_run_token(run.id, settings)
    assert post(client, run.id, "heartbeat", token, 1).status_code == 200
    assert post(client, run.id, "heartbeat", token, 2).status_code == 200
    r = post(client, run.id, "done", token, 1, {"state": "failed", "error": "old attempt"})
    assert r.status_code == 409 and "superseded" in r.text
    assert post(client, run.id, "metrics", token, 2, {"epoch": 1, "metrics": {"acc": 0.5}}).status_code == 200
    r = post(client, run.id, "done", token, 2, {"state": "completed", "metrics": {"acc": 0.5}})
    assert r.status_code == 200 and r.json()["state"] == "completed" and r.json()["attempt"] == 2


def test_callbacks_without_an_attempt_keep_working(client, db, settings):
    run = crud.create_run(db, spec={"model": "resnet18", "dataset": "d", "epochs": 5})
    token = mint_run_token(run.id, settings)
    assert post(client, run.id, "heartbeat", token, None).status_code == 200
    assert post(client, run.id, "done", token, None, {"state": "completed"}).json()["state"] == "completed"
