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

from api import crud
from api.errors import ServiceUnavailable
from api.models import Run, utcnow
from core.errors import StorageError
from core.settings import Settings
from core.spec import TrainSpec
from core.submit import deployment_name, read_summary

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
    from core.stack import server_healthy

    return server_healthy(settings.prefect_api_url, timeout=5.0)


def submit(run: Run, spec: TrainSpec, *, settings: Settings, run_token: str) -> str:
    """Create the flow run of ``train-<framework>`` for ``run``; returns the flow-run id.

    The run id is the idempotency key, so a repeated submission of one run makes one flow run.
    """
    from prefect.deployments import run_deployment
    from prefect.exceptions import ObjectNotFound

    from core.prefect_setup import prefect_api

    if not reachable(settings):
        raise ServiceUnavailable(_down_message(settings, "submitted"), run_id=run.id)
    parameters = {"spec": spec.model_dump(mode="json"), "run_id": run.id, "api_url": settings.api_url,
                  "run_token": run_token}
    try:
        with prefect_api(settings):
            flow_run = run_deployment(deployment_name(spec), parameters=parameters, timeout=0, as_subflow=False,
                                      idempotency_key=run.id, tags=["vtp", f"vtp-run:{run.id}"])
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


def apply_flow_run(session: Session, run: Run, flow_run: Any, *, settings: Settings) -> bool:
    """Mirror one flow run's state onto ``run``; True when something changed."""
    state = flow_run.state
    if state is None:
        return False
    target = STATE_MAP.get(state.type.value)
    if target is None and run.cancel_requested and _stuck_cancelling(state):
        target = _finish_cancellation(flow_run, settings)
    if target is None or target == run.state:
        return False
    changes: dict[str, Any] = {"state": target}
    if run.state == "crashed" and target in ("queued", "pending", "running"):  # Prefect retries it
        changes.update(finished=None, error=None)
        crud.add_run_event(session, run=run, kind="retrying", commit=False,
                           message=f"retried after a crash ({state.name}); it resumes from its last checkpoint",
                           attempt=(flow_run.run_count or 0) + 1)
    if run.started is None and flow_run.start_time is not None:
        changes["started"] = flow_run.start_time
    if target in ("completed", "failed", "cancelled", "crashed"):
        changes["finished"] = run.finished or flow_run.end_time or utcnow()
        if target in ("failed", "crashed") and not run.error:
            changes["error"] = state.message or f"the flow run {state.name.lower()}"
        if target == "completed":
            changes.update(_summary_fields(run, settings))
    crud.update_run(session, run=run, **changes)
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


def _summary_fields(run: Run, settings: Settings) -> dict[str, Any]:
    """Final metrics and checkpoint from the run's summary.json, when callbacks did not bring them."""
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


def sync_runs(session: Session, runs: Sequence[Run], *, settings: Settings) -> None:
    """Refresh the runs that may still change (not finished, or crashed and maybe retried) from Prefect, in one read."""
    active = [r for r in runs if r.state not in crud.FINAL_STATES and r.prefect_flow_run_id]
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
