"""Starting, cancelling and retrying runs: the steps between a request and Prefect.

A run is stored first (state ``queued``), then submitted with its own claim ticket (never a run
token: Prefect's flow-run parameters are readable by anyone who can read Prefect); when submission
fails the run stays on record as ``failed`` with the reason, so nothing is lost silently.

:func:`claim_run_token` is the one-time exchange of that ticket for a run token, once per attempt;
:func:`check_done` keeps a ``done`` callback from publishing what the run never produced.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import case, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from api import crud, prefect_runs, run_states
from api.errors import Conflict, ServiceUnavailable, Unprocessable
from api.models import MetricPoint, Run, utcnow
from api.run_states import SETTLED_STATES, Actor
from api.security import RunTokenForbidden, mint_run_ticket, mint_run_token, verify_run_ticket
from core.settings import Settings
from core.spec import TrainSpec, parse_spec
from tasks.dataset_store import resolve
from tasks.storage import Storage

log = logging.getLogger("vtp.api")


@dataclass
class Submitted:
    run: Run
    created: bool  # False: an earlier request with the same client_request_id made it


def start_run(session: Session, *, settings: Settings, spec_data: dict[str, Any], project_id: int | None = None,
              client_request_id: str | None = None, retry_of: str | None = None) -> Submitted:
    if client_request_id is not None:
        existing = crud.get_run_by_client_request_id(session, client_request_id=client_request_id)
        if existing is not None:
            return Submitted(existing, created=False)
    spec = parse_spec(spec_data)
    crud.check_project(session, project_id=project_id)
    resolve(Storage(settings=settings), spec.dataset)  # an unknown dataset: 422 listing the registered ones
    try:
        run = crud.create_run(session, spec=spec.model_dump(mode="json"), project_id=project_id,
                              client_request_id=client_request_id, retry_of=retry_of)
    except IntegrityError:
        if client_request_id is None:
            raise
        existing = crud.get_run_by_client_request_id(session, client_request_id=client_request_id)
        if existing is None:
            raise
        return Submitted(existing, created=False)  # a concurrent request with the same id won
    submit_run(session, run=run, spec=spec, settings=settings)
    return Submitted(run, created=True)


def submit_run(session: Session, *, run: Run, spec: TrainSpec, settings: Settings) -> Run:
    """Submit a stored run to Prefect; on failure mark it failed and re-raise (503).

    The flow run's ``run_token`` parameter carries a claim ticket, not a token (see claim_run_token)."""
    ticket = mint_run_ticket(run.id, settings)
    try:
        flow_run_id = prefect_runs.submit(run, spec, settings=settings, run_token=ticket)
    except ServiceUnavailable as e:
        crud.finish_run(session, run=run, state="failed", by=Actor.USER, error=f"not submitted: {e}")
        raise
    return crud.update_run(session, run=run, prefect_flow_run_id=flow_run_id)


def cancel_run(session: Session, *, run: Run, settings: Settings) -> Run:
    prefect_runs.sync_run_state(session, run, settings=settings)
    if run.terminal:
        raise Conflict(f"run {run.id} is already {run.state}; there is nothing to cancel")
    crud.update_run(session, run=run, cancel_requested=True)
    if run.prefect_flow_run_id is None:  # never reached Prefect: nothing runs anywhere
        return crud.finish_run(session, run=run, state="cancelled", by=Actor.USER)
    try:
        prefect_runs.cancel(run, settings=settings)
    except prefect_runs.FlowRunGone as e:
        return crud.finish_run(session, run=run, state="cancelled", by=Actor.USER, error=str(e))
    except ServiceUnavailable as e:
        raise ServiceUnavailable(f"{e}. The trainer is still told to stop at its next heartbeat.", run_id=run.id) from None
    return prefect_runs.sync_run_state(session, run, settings=settings)


def retry_run(session: Session, *, run: Run, settings: Settings) -> Run:
    """A new run with the same spec and project, linked to the original by ``retry_of``: its own
    id, name (the next ``<model>-<dataset>-<n>``) and flow run. Prefect's own crash retries are not
    new runs: they are attempts of the same run (``Run.attempt``) and keep its name."""
    prefect_runs.sync_run_state(session, run, settings=settings)
    if not run.terminal:
        raise Conflict(f"run {run.id} is still {run.state}: wait for it to end, or cancel it first")
    return start_run(session, settings=settings, spec_data=run.spec, project_id=run.project_id,
                     retry_of=run.id).run


# -- the one-time exchange of a claim ticket for a run token --------------------------------------


@dataclass
class Claimed:
    token: str
    just_started: bool  # the claim turned the run running (publish its state)


def _prefect_attempt(flow_run_id: str, settings: Settings) -> tuple[int, str] | None:
    """(run_count, state type) of the flow run as Prefect has it; None when it does not exist.
    Raises ServiceUnavailable (503: the flow retries) when Prefect cannot be asked."""
    found = prefect_runs.flow_runs([flow_run_id], settings=settings)
    if found is None:
        raise ServiceUnavailable("Prefect is not reachable, so the claim ticket cannot be checked: retry shortly")
    flow_run = found.get(flow_run_id)
    if flow_run is None:
        return None
    state = flow_run.state.type.value if flow_run.state is not None else ""
    return int(flow_run.run_count or 0), state


def claim_run_token(session: Session, *, run_id: str, ticket: str, attempt: int, flow_run_id: str,
                    settings: Settings) -> Claimed:
    """Exchange the run's claim ticket for a run token, once per attempt.

    The ticket is bound to the run (signed ``sub``) and to its Prefect flow run (the id the API
    stored at submission), and expires after ``run_token_submit_ttl_s``. Attempt ``N`` may claim
    only while Prefect runs the flow run as its ``N``-th run (state RUNNING, run_count N), and only
    once: the claim raises the run's ``attempt`` to N in one conditional UPDATE, which also fences
    older attempts off. A second claim of the same attempt means someone else holds the ticket
    (read from Prefect's parameters): the run is failed, so whatever token the other party got is
    refused from then on (callbacks of an ended run are refused).
    """
    verify_run_ticket(ticket, run_id, settings)  # 401 / 403
    run = crud.get_run(session, run_id=run_id)  # 404
    if run.state in SETTLED_STATES:
        raise Conflict(f"run {run_id} already ended ({run.state}); its ticket is no longer exchanged")
    if run.prefect_flow_run_id is None:
        raise ServiceUnavailable(f"run {run_id} has no flow run on record yet: retry shortly")
    if flow_run_id != run.prefect_flow_run_id:
        raise RunTokenForbidden(f"this claim ticket belongs to flow run {run.prefect_flow_run_id}, not {flow_run_id}")
    if attempt <= (run.attempt or 0):
        _claimed_twice(session, run, attempt)
    seen = _prefect_attempt(flow_run_id, settings)
    if seen is None or seen != (attempt, "RUNNING"):
        raise Conflict(f"attempt {attempt} of run {run_id} is not running in Prefect "
                       f"({'no such flow run' if seen is None else f'run_count {seen[0]}, state {seen[1]}'}); "
                       "a ticket is exchanged only by the attempt Prefect is running")
    now = utcnow()
    stmt = (update(Run)
            .where(Run.id == run_id, Run.state.not_in(sorted(SETTLED_STATES)), Run.attempt < attempt)
            .values(attempt=attempt, last_heartbeat=now,
                    state=run_states.to_running_sql(Actor.TRAINER, Run.state),
                    started=func.coalesce(Run.started, now),
                    finished=case((Run.state == "crashed", None), else_=Run.finished),
                    error=case((Run.state == "crashed", None), else_=Run.error))
            .returning(Run.started).execution_options(synchronize_session=False))
    row = session.execute(stmt).first()
    if row is None:  # a concurrent claim of the same attempt won the UPDATE
        session.rollback()
        session.refresh(run)
        _claimed_twice(session, run, attempt)
    session.commit()
    session.refresh(run)
    return Claimed(mint_run_token(run_id, settings), just_started=row.started == now)


def _claimed_twice(session: Session, run: Run, attempt: int) -> None:
    if run.state in SETTLED_STATES:
        raise Conflict(f"run {run.id} already ended ({run.state}); its ticket is no longer exchanged")
    if attempt < (run.attempt or 0):
        raise Conflict(f"superseded: attempt {attempt} of run {run.id} was replaced by attempt {run.attempt}")
    message = (f"the claim ticket of attempt {attempt} was exchanged twice: someone else holds this run's ticket "
               "(read from Prefect's flow-run parameters?), so the run is failed and its results are refused. "
               "Restrict who can reach the Prefect API (docs/security.md) and start the run again.")
    log.warning("run %s: %s", run.id, message)
    crud.finish_run(session, run=run, state="failed", by=Actor.USER, error=message)
    raise Conflict(message)


# -- what a done callback may publish --------------------------------------------------------------

_UNSAFE_IN_PATH = re.compile(r"[\x00-\x1f\x7f\\?#%]")


def check_done(session: Session, *, run: Run, settings: Settings, metrics: dict[str, float] | None,
               checkpoint_uri: str | None) -> None:
    """422 unless the checkpoint lies under ``<storage_url>/runs/<run_id>/`` and every final metric
    is one the run reported in its metric posts."""
    if checkpoint_uri is not None:
        prefix = f"{settings.storage_url.rstrip('/')}/runs/{run.id}/"
        rest = checkpoint_uri[len(prefix):] if checkpoint_uri.startswith(prefix) else None
        if (rest is None or not rest or _UNSAFE_IN_PATH.search(rest)
                or any(part in ("", ".", "..") for part in rest.split("/"))):
            raise Unprocessable(f"checkpoint_uri={checkpoint_uri!r} is not allowed: a run publishes only files "
                                f"under its own storage folder {prefix}")
    if metrics:
        reported = set(session.scalars(select(MetricPoint.name).where(MetricPoint.run_id == run.id).distinct()))
        unknown = sorted(set(metrics) - reported)
        if unknown:
            shown = ", ".join(repr(n) for n in unknown[:10]) + (" ..." if len(unknown) > 10 else "")
            raise Unprocessable(f"metrics {shown} were never reported by run {run.id}: final metrics must be "
                                f"among those it posted per epoch ({len(reported)} names)")


_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def plain_error(text: str | None) -> str | None:
    """A run's error as stored: plain text (control characters dropped). It is never HTML: every
    renderer escapes it (core/escape.py)."""
    return None if text is None else _CONTROL.sub("", text)
