"""The API's side of Prefect: submit a run to its deployment, mirror flow-run states onto runs,
request cancellation.

Reads are meant to be cheap and tolerant: a health check first (it fails at once where the client
would retry a refused connection for 1.5 s), then one batched request for many runs with a short
timeout; when Prefect is down the run keeps the state it had and the API stays usable. Writes
(submit, cancel) raise ServiceUnavailable so the person learns that nothing happened.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any
from uuid import UUID

import httpx
from sqlalchemy.orm import Session

from api import crud, run_states
from api.errors import ServiceUnavailable
from api.models import Run, utcnow
from api.run_states import SETTLED_STATES, Actor
from core.errors import StorageError
from core.prefect_api import deployment_name
from core.settings import Settings
from core.spec import TrainSpec
from tasks.storage import read_summary

log = logging.getLogger("vtp.api")
READ_TIMEOUT_S = 3.0
# Prefect state type -> vtp run state; CANCELLING keeps the run's state until Prefect settles it.
STATE_MAP: dict[str, str | None] = {
    "SCHEDULED": "queued",
    "PENDING": "pending",
    "PAUSED": "pending",
    "RUNNING": "running",
    "CANCELLING": None,
    "COMPLETED": "completed",
    "FAILED": "failed",
    "CANCELLED": "cancelled",
    "CRASHED": "crashed",
}
# A cancel that lands while a worker is still submitting the run can leave it in CANCELLING with
# nothing left to stop (Prefect 3.8: the engine starts, sees CANCELLING and exits). After this long,
# a cancellation vtp asked for is completed by vtp.
CANCEL_GRACE_S = 60.0
# What "Prefect is unreachable" looks like from its client (a 5xx PrefectHTTPStatusError is an
# httpx error too; 4xx answers are told apart by _refused).
UNREACHABLE = (httpx.HTTPError, OSError)


class FlowRunGone(Exception):
    """The run's flow run was deleted from Prefect: there is nothing left to cancel there."""


def _down_message(settings: Settings, action: str) -> str:
    return (f"Prefect is not reachable at {settings.prefect_api_url}, so the run could not be {action}: "
            "start the stack with `vtp up` (or check VTP_PREFECT_API_URL) and try again")


def _client(settings: Settings, *, timeout: float = READ_TIMEOUT_S) -> Any:
    """A sync client bound to vtp's Prefect URL (no global settings touched, ~20 ms to make)."""
    from prefect.client.orchestration import SyncPrefectClient

    return SyncPrefectClient(settings.prefect_api_url, auth_string=settings.prefect_auth(),
                             httpx_settings={"timeout": timeout})


def reachable(settings: Settings) -> bool:
    """A look first: a refused connection fails at once; a busy server gets 5 s to answer its health check."""
    from core.prefect_api import server_healthy

    return server_healthy(settings.prefect_api_url, timeout=5.0)


def submit(run: Run, spec: TrainSpec, *, settings: Settings, run_token: str) -> str:
    """Create the flow run of ``train-<framework>`` for ``run``; returns the flow-run id.

    The run id is the idempotency key, so a repeated submission of one run makes one flow run. The
    flow run is named after the run (``run.name``, e.g. ``yolo11n-shapes-detect-7``), so the Prefect
    UI and vtp show one name. A retry through the API is a new run with its own name and flow run.
    """
    from prefect.deployments import run_deployment
    from prefect.exceptions import ObjectNotFound

    from core.prefect_api import prefect_api

    if not reachable(settings):
        raise ServiceUnavailable(_down_message(settings, "submitted"), run_id=run.id)
    parameters = {"spec": spec.model_dump(mode="json"), "run_id": run.id, "api_url": settings.api_url,
                  "run_token": run_token}
    try:
        with prefect_api(settings):
            flow_run = run_deployment(deployment_name(spec), parameters=parameters, timeout=0, as_subflow=False,
                                      flow_run_name=run.name, idempotency_key=run.id,
                                      tags=["vtp", f"vtp-run:{run.id}"])
    except ObjectNotFound:
        raise ServiceUnavailable(
            f"the deployment {deployment_name(spec)} does not exist in Prefect at {settings.prefect_api_url}: "
            "start the stack with `vtp up`, which creates it", run_id=run.id) from None
    except UNREACHABLE as e:
        if (detail := _refused(e)) is not None:
            raise ServiceUnavailable(
                f"Prefect refused the flow run of {deployment_name(spec)}: {detail}. The deployment may be "
                "out of date: restart `vtp up` to deploy again", run_id=run.id) from None
        raise ServiceUnavailable(f"{_down_message(settings, 'submitted')} ({e})", run_id=run.id) from None
    return str(flow_run.id)


def _refused(error: Exception) -> str | None:
    """The server's own reason when Prefect answered with a 4xx, else None (it is unreachable)."""
    response = getattr(error, "response", None)
    if not isinstance(error, httpx.HTTPStatusError) or response is None or response.status_code >= 500:
        return None
    try:
        return str(response.json().get("detail") or response.text)
    except ValueError:
        return response.text


def cancel(run: Run, *, settings: Settings) -> None:
    """Ask Prefect to cancel the run's flow run (state Cancelling; the worker stops it)."""
    from prefect.client.schemas.objects import State, StateType
    from prefect.client.schemas.responses import SetStateStatus
    from prefect.exceptions import ObjectNotFound

    if not reachable(settings):
        raise ServiceUnavailable(_down_message(settings, "cancelled"), run_id=run.id)
    try:
        with _client(settings, timeout=30) as client:
            result = client.set_flow_run_state(flow_run_id=UUID(run.prefect_flow_run_id),
                                               state=State(type=StateType.CANCELLING, message="cancelled via the vtp API"))
    except ObjectNotFound:
        raise FlowRunGone(f"the flow run {run.prefect_flow_run_id} of run {run.id} no longer exists in Prefect") from None
    except UNREACHABLE as e:
        raise ServiceUnavailable(f"{_down_message(settings, 'cancelled')} ({e})", run_id=run.id) from None
    if result.status == SetStateStatus.ABORT:
        reason = getattr(result.details, "reason", "") or "Prefect refused the transition"
        raise ServiceUnavailable(f"Prefect did not cancel run {run.id}: {reason}", run_id=run.id)


def flow_runs(ids: Sequence[str], *, settings: Settings) -> dict[str, Any] | None:
    """Flow runs by id (one request), or None when Prefect cannot be reached."""
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    if not ids:
        return {}
    if not reachable(settings):
        log.warning("run states not refreshed: no Prefect server answers at %s", settings.prefect_api_url)
        return None
    try:
        with _client(settings) as client:
            found = client.read_flow_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[UUID(i) for i in ids])),
                                          limit=len(ids))
    except UNREACHABLE as e:
        log.warning("run states not refreshed: Prefect at %s is unreachable (%s)", settings.prefect_api_url, e)
        return None
    return {str(fr.id): fr for fr in found}


def apply_flow_run(session: Session, run: Run, flow_run: Any, *, settings: Settings,
                   by: Actor = Actor.PREFECT) -> bool:
    """Mirror one flow run's state onto ``run`` (through api.run_states, as ``by``); True when
    something changed. A change the table refuses (e.g. a settled run that Prefect shows running
    again after a manual retry there) is logged and left out."""
    state = flow_run.state
    if state is None:
        return False
    target = STATE_MAP.get(state.type.value)
    if target is None and run.cancel_requested and _stuck_cancelling(state):
        target = _finish_cancellation(flow_run, settings)
    if target is None or target == run.state:
        return False
    if not run_states.allowed(run.state, target, by):
        log.warning("run %s: Prefect shows its flow run %s as %s, but a %s run does not become %s; kept %s",
                    run.id, flow_run.id, state.name, run.state, target, run.state)
        return False
    if run.state == "crashed" and target in run_states.ACTIVE_STATES:  # Prefect retries it
        crud.add_run_event(session, run=run, kind="retrying", commit=False,
                           message=f"retried after a crash ({state.name}); it resumes from its last checkpoint",
                           attempt=(flow_run.run_count or 0) + 1)
    if run.started is None and flow_run.start_time is not None:
        run.started = flow_run.start_time
    error = None
    if target in ("failed", "crashed") and not run.error:
        error = state.message or f"the flow run {state.name.lower()}"
    if target == "completed":
        crud.update_run(session, run=run, commit=False, **summary_fields(run, settings))
        if not crud.has_metrics(session, run_id=run.id):  # a run without callbacks: its results.csv has them
            for epoch, values in stored_epoch_metrics(run.id, settings).items():
                crud.record_metrics(session, run_id=run.id, epoch=epoch, metrics=values, commit=False)
    run_states.transition(run, target, by=by, error=error, when=flow_run.end_time or utcnow())
    session.commit()
    return True


def _stuck_cancelling(state: Any) -> bool:
    return state.type.value == "CANCELLING" and (utcnow() - state.timestamp).total_seconds() > CANCEL_GRACE_S


def _finish_cancellation(flow_run: Any, settings: Settings) -> str | None:
    """Move a flow run stuck in CANCELLING to CANCELLED; None (no change) if Prefect says no."""
    from prefect.client.schemas.objects import State, StateType

    log.warning("flow run %s was cancelled via the API but stayed Cancelling for over %.0fs; marking it Cancelled",
                flow_run.id, CANCEL_GRACE_S)
    try:
        with _client(settings) as client:
            client.set_flow_run_state(flow_run.id, State(type=StateType.CANCELLED,
                                                         message="cancelled via the vtp API"), force=True)
    except UNREACHABLE as e:
        log.warning("flow run %s stays Cancelling for now: %s", flow_run.id, e)
        return None
    return "cancelled"


def summary_fields(run: Run, settings: Settings) -> dict[str, Any]:
    """Final metrics, checkpoint and epochs done from the run's ``runs/<id>/summary.json`` (written
    by the flow with its outputs), where callbacks did not bring them; {} when there is none."""
    if run.final_metrics is not None and run.checkpoint_uri is not None:
        return {}
    try:
        summary = read_summary(settings, run.id)
    except (StorageError, OSError) as e:
        log.warning("summary of run %s not read from storage (%s); its metrics stay empty", run.id, e)
        return {}
    if not summary:
        return {}
    return {"final_metrics": run.final_metrics or summary.get("metrics"),
            "checkpoint_uri": run.checkpoint_uri or summary.get("checkpoint_uri"),
            "epochs_done": max(run.epochs_done, int(summary.get("epochs_completed") or 0))}


MAX_EPOCH_ROWS = 10_000
RESULTS_CSV = ("artifacts", "results.csv")


def stored_epoch_metrics(run_id: str, settings: Settings) -> dict[int, dict[str, float]]:
    """Per-epoch metrics from ``runs/<run_id>/artifacts/results.csv`` (one row per epoch, an
    ``epoch`` column counted from 1, one numeric column per metric, as every vtp trainer writes it);
    {} when the file is missing or unreadable. At most MAX_EPOCH_ROWS epochs and 500 names each;
    empty and non-finite cells are left out."""
    import csv
    import io
    import math

    from tasks.storage import Storage

    try:
        storage = Storage(settings=settings)
        with storage.fs.open(storage.path("runs", run_id, *RESULTS_CSV), "r") as f:
            text = f.read(16 << 20)
    except (StorageError, OSError) as e:
        log.info("no per-epoch metrics for run %s in storage (%s)", run_id, e)
        return {}
    epochs: dict[int, dict[str, float]] = {}
    for row in list(csv.DictReader(io.StringIO(text)))[:MAX_EPOCH_ROWS]:
        row = {(k or "").strip(): (v or "").strip() for k, v in row.items()}
        try:
            epoch = int(float(row.pop("epoch")))
        except (KeyError, ValueError):
            continue
        values: dict[str, float] = {}
        for name, cell in list(row.items())[:500]:
            try:
                value = float(cell)
            except ValueError:
                continue
            if name and len(name) <= 200 and math.isfinite(value):
                values[name] = value
        if epoch >= 1 and values:
            epochs[epoch] = values
    return epochs


def sync_runs(session: Session, runs: Sequence[Run], *, settings: Settings) -> None:
    """Refresh the runs that may still change (not finished, or crashed and maybe retried) from Prefect, in one read."""
    active = [r for r in runs if r.state not in SETTLED_STATES and r.prefect_flow_run_id]
    if not active:
        return
    found = flow_runs([r.prefect_flow_run_id for r in active], settings=settings)
    if found is None:
        return
    for run in active:
        flow_run = found.get(run.prefect_flow_run_id)
        if flow_run is not None:
            apply_flow_run(session, run, flow_run, settings=settings)


def sync_run_state(session: Session, run: Run, *, settings: Settings) -> Run:
    """Mirror the Prefect flow-run state onto ``run`` (a no-op for finished runs or when Prefect is down)."""
    sync_runs(session, [run], settings=settings)
    return run
