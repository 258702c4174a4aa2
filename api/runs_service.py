"""Starting, cancelling and retrying runs: the steps between a request and Prefect.

A run is stored first (state ``queued``), then submitted with its own run token; when submission
fails the run stays on record as ``failed`` with the reason, so nothing is lost silently.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from api import crud, prefect_runs
from api.errors import Conflict, ServiceUnavailable
from api.models import Run
from api.security import mint_run_token
from core.settings import Settings
from core.spec import TrainSpec, parse_spec
from tasks.dataset_store import resolve
from tasks.storage import Storage


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
    """Submit a stored run to Prefect; on failure mark it failed and re-raise (503)."""
    token = mint_run_token(run.id, settings, ttl_s=settings.run_token_submit_ttl_s)
    try:
        flow_run_id = prefect_runs.submit(run, spec, settings=settings, run_token=token)
    except ServiceUnavailable as e:
        crud.finish_run(session, run=run, state="failed", error=f"not submitted: {e}")
        raise
    return crud.update_run(session, run=run, prefect_flow_run_id=flow_run_id)


def cancel_run(session: Session, *, run: Run, settings: Settings) -> Run:
    prefect_runs.sync_run_state(session, run, settings=settings)
    if run.terminal:
        raise Conflict(f"run {run.id} is already {run.state}; there is nothing to cancel")
    crud.update_run(session, run=run, cancel_requested=True)
    if run.prefect_flow_run_id is None:  # never reached Prefect: nothing runs anywhere
        return crud.finish_run(session, run=run, state="cancelled")
    try:
        prefect_runs.cancel(run, settings=settings)
    except prefect_runs.FlowRunGone as e:
        return crud.finish_run(session, run=run, state="cancelled", error=str(e))
    except ServiceUnavailable as e:
        raise ServiceUnavailable(f"{e}. The trainer is still told to stop at its next heartbeat.", run_id=run.id) from None
    return prefect_runs.sync_run_state(session, run, settings=settings)


def retry_run(session: Session, *, run: Run, settings: Settings) -> Run:
    """A new run with the same spec and project, linked to the original by ``retry_of``."""
    prefect_runs.sync_run_state(session, run, settings=settings)
    if not run.terminal:
        raise Conflict(f"run {run.id} is still {run.state}: wait for it to end, or cancel it first")
    return start_run(session, settings=settings, spec_data=run.spec, project_id=run.project_id,
                     retry_of=run.id).run
