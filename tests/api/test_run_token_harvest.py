"""Issue 13, item 5 and 7: run tokens cannot be harvested, forged results are refused, no token in logs.

Each test replays an attack (a run token read from Prefect's flow-run parameters, a forged ``done``
with a fake accuracy, ``file:///etc/passwd`` and an HTML error, ``?token=`` in the WebSocket URL)
and asserts it is refused with nothing stored.
"""

from __future__ import annotations

import logging
import stat
import time
import uuid
from contextlib import contextmanager
from types import SimpleNamespace

import pytest

from api import crud, prefect_runs, runs_service
from api.log_redact import RedactSecrets, install
from api.models import Run
from api.run_states import Actor
from api.security import (
    RunTokenInvalid,
    is_run_ticket,
    mint_run_ticket,
    mint_run_token,
    verify_run_token,
)
from core.escape import md_text
from core.spec import parse_spec
from tasks import run_token as flow_side

SPEC = {"model": "yolo11n", "dataset": "shapes-detect", "epochs": 3, "task": "detect", "framework": "ultralytics"}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


class FakePrefect:
    """What Prefect says about the run's flow run: its run_count and state."""

    def __init__(self, monkeypatch):
        self.runs: dict[str, SimpleNamespace] = {}
        self.reachable = True
        monkeypatch.setattr(prefect_runs, "flow_runs", self.flow_runs)

    def set(self, flow_run_id: str, run_count: int, state: str = "RUNNING") -> None:
        self.runs[flow_run_id] = SimpleNamespace(run_count=run_count, state=SimpleNamespace(type=SimpleNamespace(value=state)))

    def flow_runs(self, ids, *, settings):  # noqa: ARG002
        if not self.reachable:
            return None
        return {i: self.runs[i] for i in ids if i in self.runs}


@pytest.fixture
def prefect(monkeypatch):
    return FakePrefect(monkeypatch)


@pytest.fixture
def submitted(db, settings, monkeypatch, prefect):
    """A run submitted through runs_service.submit_run; returns (run, the flow-run parameters)."""
    captured: dict[str, str] = {}

    def fake_submit(run, spec, *, settings, run_token):  # noqa: ARG001
        captured["run_token"] = run_token
        return str(uuid.uuid4())

    monkeypatch.setattr(prefect_runs, "submit", fake_submit)
    run = crud.create_run(db, spec=SPEC)
    runs_service.submit_run(db, run=run, spec=parse_spec(SPEC), settings=settings)
    prefect.set(run.prefect_flow_run_id, 1)
    return run, captured


def claim(client, run, ticket: str, attempt: int = 1, flow_run_id: str | None = None):
    return client.post(f"/api/internal/runs/{run.id}/token", headers=bearer(ticket),
                       json={"attempt": attempt, "flow_run_id": flow_run_id or run.prefect_flow_run_id})


def stored(db, run) -> tuple:
    db.expire_all()
    row = db.get(Run, run.id)
    return row.state, row.final_metrics, row.checkpoint_uri, row.error


# -- A: nothing to harvest in Prefect ------------------------------------------------------------


def test_prefect_parameters_hold_a_ticket_that_no_callback_accepts(client, db, submitted):
    run, params = submitted
    harvested = params["run_token"]
    assert is_run_ticket(harvested)
    with pytest.raises(RunTokenInvalid):
        verify_run_token(harvested, run.id, client.app.state.settings)
    for kind, body in (("heartbeat", {}), ("metrics", {"epoch": 1, "metrics": {"acc": 0.999}}),
                       ("done", {"state": "completed", "metrics": {"acc": 0.999}})):
        r = client.post(f"/api/internal/runs/{run.id}/{kind}", json=body, headers=bearer(harvested))
        assert r.status_code == 401, (kind, r.text)
    assert stored(db, run) == ("queued", None, None, None)
    assert crud.list_metrics(db, run_id=run.id) == []


def test_the_ticket_is_exchanged_once_and_a_second_exchange_fails_the_run(client, db, submitted):
    run, params = submitted
    ticket = params["run_token"]
    first = claim(client, run, ticket)  # the real flow, at its start
    assert first.status_code == 200, first.text
    token = first.json()["token"]
    assert client.post(f"/api/internal/runs/{run.id}/heartbeat", headers={**bearer(token), "X-Vtp-Attempt": "1"}
                       ).status_code == 200
    # A harvester who read the ticket from Prefect exchanges it too: refused, and the run is failed,
    # so no token of this attempt can publish anything from now on.
    again = claim(client, run, ticket)
    assert again.status_code == 409 and "exchanged twice" in again.text
    forged = client.post(f"/api/internal/runs/{run.id}/done", headers=bearer(token),
                         json={"state": "completed", "metrics": {"acc": 0.999}})
    assert forged.status_code == 200 and forged.json()["state"] == "failed"  # a repeated done changes nothing
    state, metrics, checkpoint, error = stored(db, run)
    assert (state, metrics, checkpoint) == ("failed", None, None) and "exchanged twice" in error


def test_a_harvester_that_claims_first_is_cut_off_by_the_real_flow(client, db, submitted):
    run, params = submitted
    stolen = claim(client, run, params["run_token"])
    assert stolen.status_code == 200
    assert claim(client, run, params["run_token"]).status_code == 409  # the real flow's claim: the run fails
    r = client.post(f"/api/internal/runs/{run.id}/done", headers=bearer(stolen.json()["token"]),
                    json={"state": "completed", "metrics": {}, "checkpoint_uri": None})
    assert r.json()["state"] == "failed"
    assert stored(db, run)[:3] == ("failed", None, None)


def test_a_ticket_is_only_exchanged_by_the_attempt_prefect_runs(client, db, submitted, prefect):
    run, params = submitted
    ticket = params["run_token"]
    # Attempt 2 does not exist yet (Prefect runs attempt 1): claiming it would fence the real run off.
    r = claim(client, run, ticket, attempt=2)
    assert r.status_code == 409 and "not running in Prefect" in r.text
    prefect.set(run.prefect_flow_run_id, 1, "SCHEDULED")  # still queued: nothing to claim either
    assert claim(client, run, ticket).status_code == 409
    prefect.reachable = False  # Prefect down: 503, the flow retries
    assert claim(client, run, ticket).status_code == 503
    db.expire_all()
    assert db.get(Run, run.id).attempt == 0 and db.get(Run, run.id).state == "queued"


def test_a_crash_retried_attempt_gets_its_own_token(client, db, submitted, prefect):
    run, params = submitted
    ticket = params["run_token"]
    first = claim(client, run, ticket).json()["token"]
    prefect.set(run.prefect_flow_run_id, 2)  # attempt 1 crashed; Prefect runs the flow run again
    second = claim(client, run, ticket, attempt=2)
    assert second.status_code == 200, second.text
    old = client.post(f"/api/internal/runs/{run.id}/heartbeat", headers={**bearer(first), "X-Vtp-Attempt": "1"})
    assert old.status_code == 409 and "superseded" in old.text
    assert client.post(f"/api/internal/runs/{run.id}/heartbeat",
                       headers={**bearer(second.json()["token"]), "X-Vtp-Attempt": "2"}).status_code == 200
    assert claim(client, run, ticket, attempt=1).status_code == 409  # an older attempt: superseded, no harm


def test_tickets_of_another_run_flow_run_or_past_their_life_are_refused(client, db, settings, submitted):
    run, params = submitted
    other = crud.create_run(db, spec=SPEC)
    assert claim(client, run, mint_run_ticket(other.id, settings)).status_code == 403
    assert claim(client, run, params["run_token"], flow_run_id=str(uuid.uuid4())).status_code == 403
    expired = mint_run_ticket(run.id, settings, ttl_s=-60)
    assert claim(client, run, expired).status_code == 401
    assert claim(client, run, mint_run_token(run.id, settings)).status_code == 401  # a token is not a ticket
    assert client.post(f"/api/internal/runs/{run.id}/token", json={"attempt": 1, "flow_run_id": "x"}).status_code == 401
    db.expire_all()
    assert db.get(Run, run.id).attempt == 0


def test_the_flow_exchanges_its_ticket_and_keeps_a_kubernetes_token(client, submitted, monkeypatch):
    run, params = submitted

    @contextmanager
    def through_app(**_):
        yield client

    monkeypatch.setattr(flow_side.httpx, "Client", through_app)
    monkeypatch.setattr(flow_side, "_flow_run", lambda: (1, run.prefect_flow_run_id))
    token = flow_side.obtain_run_token("http://testserver", run.id, params["run_token"])
    assert token and not is_run_ticket(token)
    verify_run_token(token, run.id, client.app.state.settings)
    secret_token = "a-token-from-a-kubernetes-secret"
    assert flow_side.obtain_run_token("http://testserver", run.id, secret_token) == secret_token
    assert flow_side.obtain_run_token("http://testserver", run.id, None) is None
    # Exchanged once: a second exchange is refused (and fails the run), so the flow gets nothing
    assert flow_side.obtain_run_token("http://testserver", run.id, params["run_token"], timeout_s=1) is None


# -- A: a done callback publishes only what the run produced --------------------------------------


@pytest.fixture
def live(client, db, settings):
    run = crud.create_run(db, spec=SPEC)
    token = mint_run_token(run.id, settings)
    r = client.post(f"/api/internal/runs/{run.id}/metrics", headers=bearer(token),
                    json={"epoch": 1, "epochs": 3, "metrics": {"metrics/mAP50-95(B)": 0.31, "train/box_loss": 1.2}})
    assert r.status_code == 200
    return run, token


@pytest.mark.parametrize("uri", [
    "file:///etc/passwd",
    "{storage}/runs/{other}/checkpoints/best.pt",
    "{storage}/runs/{run}/../{other}/checkpoints/best.pt",
    "{storage}/runs/{run}x/best.pt",
    "{storage}/runs/{run}/",
    "{storage}/runs/{run}/checkpoints/%2e%2e/%2e%2e/x.pt",
    "{storage}/runs/{run}/best.pt?redirect=file:///etc/passwd",
    "s3://elsewhere/runs/{run}/best.pt",
])
def test_done_refuses_a_checkpoint_outside_the_runs_folder(client, db, settings, live, uri):
    run, token = live
    uri = uri.format(storage=settings.storage_url, run=run.id, other=uuid.uuid4())
    r = client.post(f"/api/internal/runs/{run.id}/done", headers=bearer(token),
                    json={"state": "completed", "metrics": {"metrics/mAP50-95(B)": 0.31}, "checkpoint_uri": uri})
    assert r.status_code == 422 and "checkpoint_uri" in r.text, r.text
    assert stored(db, run) == ("running", None, None, None)


def test_done_refuses_metrics_the_run_never_reported(client, db, live):
    run, token = live
    r = client.post(f"/api/internal/runs/{run.id}/done", headers=bearer(token),
                    json={"state": "completed", "metrics": {"metrics/mAP50-95(B)": 0.31, "accuracy": 0.999}})
    assert r.status_code == 422 and "'accuracy'" in r.text and "never reported" in r.text
    assert stored(db, run) == ("running", None, None, None)


def test_done_with_the_runs_own_checkpoint_and_metrics_is_taken(client, db, settings, live):
    run, token = live
    best = f"{settings.storage_url}/runs/{run.id}/checkpoints/best.pt"
    r = client.post(f"/api/internal/runs/{run.id}/done", headers=bearer(token),
                    json={"state": "completed", "metrics": {"metrics/mAP50-95(B)": 0.31}, "checkpoint_uri": best})
    assert r.status_code == 200, r.text
    assert stored(db, run) == ("completed", {"metrics/mAP50-95(B)": 0.31}, best, None)


def test_an_html_error_is_stored_as_plain_text_and_rendered_inert(client, db, live):
    run, token = live
    error = '<img src=x onerror="alert(1)"> [click](javascript:alert(1))\x1b[31m'
    r = client.post(f"/api/internal/runs/{run.id}/done", headers=bearer(token), json={"state": "failed", "error": error})
    assert r.status_code == 200
    text = stored(db, run)[3]
    assert text == '<img src=x onerror="alert(1)"> [click](javascript:alert(1))[31m'  # verbatim text, no controls
    shown = md_text(text)  # how every Markdown renderer of vtp shows it
    assert "<img" not in shown and "](" not in shown and "&lt;img" in shown


# -- C: no token in the API's logs; private log folder ---------------------------------------------


def test_websocket_token_in_the_url_is_redacted_from_uvicorns_logs(tmp_path, token):
    install()
    logfile = tmp_path / "api.log"
    handler = logging.FileHandler(logfile)
    loggers = [logging.getLogger("uvicorn.error"), logging.getLogger("uvicorn.access")]
    for lg in loggers:
        lg.addHandler(handler)
        lg.setLevel(logging.INFO)
    try:  # exactly what uvicorn logs for a WebSocket handshake and an HTTP request
        loggers[0].info('%s - "WebSocket %s" [accepted]', ("127.0.0.1", 50000), f"/api/runs/x/ws?token={token}")
        loggers[1].info('%s - "%s %s HTTP/%s" %d', "127.0.0.1:50000", "GET", f"/api/runs?limit=5&token={token}", "1.1", 200)
    finally:
        for lg in loggers:
            lg.removeHandler(handler)
        handler.close()
    text = logfile.read_text()
    assert token not in text and text.count("token=[redacted]") == 2 and "limit=5" in text


def test_websocket_token_as_a_subprotocol_stays_out_of_the_url(client, db, token):
    run = crud.create_run(db, spec=SPEC)
    crud.finish_run(db, run=run, state="completed", by=Actor.TRAINER)
    with client.websocket_connect(f"/api/runs/{run.id}/ws", subprotocols=["vtp", f"vtp.bearer.{token}"]) as ws:
        assert ws.accepted_subprotocol == "vtp"
        assert ws.receive_json()["type"] == "state"


def test_redaction_filter_keeps_records_and_covers_bearer_and_tickets():
    record = logging.LogRecord("uvicorn.error", logging.INFO, __file__, 1, "auth %s then %s", (
        "Authorization: Bearer eyJ.abc.def", "vtpclaim.eyJ.x.y"), None)
    assert RedactSecrets().filter(record)
    assert record.getMessage() == "auth Authorization: Bearer [redacted] then vtpclaim.[redacted]"


def test_the_log_folder_is_private(settings):
    from api.main import create_app

    logs = settings.home / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    logs.chmod(0o755)
    (logs / "api.log").write_text("x")
    (logs / "api.log").chmod(0o644)
    create_app(settings)
    assert stat.S_IMODE(logs.stat().st_mode) == 0o700
    assert stat.S_IMODE((logs / "api.log").stat().st_mode) == 0o600


def test_ticket_life_is_the_submit_ttl(settings):
    ticket = mint_run_ticket("r1", settings)
    import jwt

    claims = jwt.decode(ticket.removeprefix("vtpclaim."), options={"verify_signature": False})
    assert claims["scope"] == "claim" and abs(claims["exp"] - time.time() - settings.run_token_submit_ttl_s) < 5
