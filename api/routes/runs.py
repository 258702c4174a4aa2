from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import StreamingResponse

from api import artifacts, crud, ledger, prefect_runs, runs_service
from api.deps import ProjectFilter, SessionDep, SettingsDep
from api.schemas import (
    MAX_ID,
    ArtifactOut,
    ArtifactsOut,
    ErrorOut,
    MetricPointOut,
    MetricsOut,
    RunCreate,
    RunList,
    RunOut,
    RunRegister,
    RunState,
)

router = APIRouter(prefix="/api/runs", tags=["runs"])

NOT_FOUND = {404: {"model": ErrorOut, "description": "No run with this id or name."}}
PREFECT_DOWN = {503: {"model": ErrorOut, "description": "Prefect is unreachable; the body's `run_id` names the "
                                                        "run, stored as failed."}}


@router.post("", status_code=201, response_model=RunOut, summary="Start a training run",
             responses={200: {"model": RunOut, "description": "A run with this client_request_id exists: it is returned."},
                        422: {"description": "The spec names a bad value (the message names the field) or an "
                                             "unknown dataset (the message lists the registered ones)."},
                        **PREFECT_DOWN})
def create_run(body: RunCreate, response: Response, session: SessionDep, settings: SettingsDep) -> RunOut:
    """Validates the spec (omitted fields take their defaults), stores the run, mints its run token
    and submits the `train-<framework>` deployment with `{spec, run_id, api_url, run_token}`."""
    submitted = runs_service.start_run(session, settings=settings, spec_data=body.spec, project_id=body.project_id,
                                       client_request_id=body.client_request_id)
    if not submitted.created:
        response.status_code = 200
    return RunOut.model_validate(submitted.run)


@router.post("/register", status_code=201, response_model=RunOut, summary="Record a run started outside the API",
             responses={200: {"model": RunOut, "description": "A run with this run_id exists: it is returned "
                                                             "(updated when it was still active)."},
                        422: {"description": "The spec names a bad value, or a value is out of bounds."}})
def register_run(body: RunRegister, response: Response, session: SessionDep, settings: SettingsDep) -> RunOut:
    """For flows that ran where the API's Prefect server cannot see them (`vtp train --local`, python
    `train_flow` without a stack): the flow reports the run when it ends, so it is in the ledger
    with its spec, state, metrics and checkpoint. Idempotent on `run_id`. Runs on the API's Prefect
    server need not call this: the API adopts them itself (api/ledger.py)."""
    run, created = ledger.register(session, body=body, settings=settings)
    if not created:
        response.status_code = 200
    return RunOut.model_validate(run)


@router.get("", response_model=RunList, summary="List runs, newest first")
def list_runs(session: SessionDep, settings: SettingsDep,
              state: Annotated[RunState | None, Query(description="Only runs in this state")] = None,
              project_id: ProjectFilter = None,
              limit: Annotated[int, Query(ge=1, le=500)] = 50,
              offset: Annotated[int, Query(ge=0, le=MAX_ID)] = 0) -> RunList:
    prefect_runs.sync_runs(session, crud.active_runs(session), settings=settings)
    rows, total = crud.list_runs(session, state=state, project_id=project_id, limit=limit, offset=offset)
    return RunList(items=[RunOut.model_validate(r) for r in rows], total=total, limit=limit, offset=offset)


@router.get("/{run_id}", response_model=RunOut, summary="One run, its state mirrored from Prefect",
            responses=NOT_FOUND)
def get_run(run_id: str, session: SessionDep, settings: SettingsDep) -> RunOut:
    """`run_id` is the run's id or its name (`yolo11n-shapes-detect-7`)."""
    run = crud.find_run(session, key=run_id)
    return RunOut.model_validate(prefect_runs.sync_run_state(session, run, settings=settings))


@router.post("/{run_id}/cancel", status_code=202, response_model=RunOut, summary="Cancel a run",
             responses={**NOT_FOUND, 409: {"model": ErrorOut, "description": "The run has ended already."},
                        **PREFECT_DOWN})
def cancel_run(run_id: str, session: SessionDep, settings: SettingsDep) -> RunOut:
    """Asks Prefect to cancel the flow run (state Cancelling); the worker stops the training and
    the run becomes `cancelled`. A run that never reached Prefect is cancelled at once."""
    run = crud.find_run(session, key=run_id)
    return RunOut.model_validate(runs_service.cancel_run(session, run=run, settings=settings))


@router.post("/{run_id}/retry", status_code=201, response_model=RunOut, summary="Run the same spec again",
             responses={**NOT_FOUND, 409: {"model": ErrorOut, "description": "The run has not ended yet."},
                        **PREFECT_DOWN})
def retry_run(run_id: str, session: SessionDep, settings: SettingsDep) -> RunOut:
    """A new run with the same spec and project; its `retry_of` names the original. It has its own id,
    name (the next `<model>-<dataset>-<n>`) and Prefect flow run. (A crashed run that Prefect retries
    by itself stays one run, with one name: its `attempt` counts up.)"""
    run = crud.find_run(session, key=run_id)
    return RunOut.model_validate(runs_service.retry_run(session, run=run, settings=settings))


@router.get("/{run_id}/metrics", response_model=MetricsOut, summary="The run's metric points by epoch",
            responses=NOT_FOUND)
def run_metrics(run_id: str, session: SessionDep) -> MetricsOut:
    run = crud.find_run(session, key=run_id)
    points = crud.list_metrics(session, run_id=run.id)
    return MetricsOut(run_id=run.id, points=[MetricPointOut.model_validate(p) for p in points])


@router.get("/{run_id}/artifacts", response_model=ArtifactsOut, summary="The run's output files",
            responses={**NOT_FOUND, 409: {"model": ErrorOut, "description": "The outputs are not complete yet."}})
def list_artifacts(run_id: str, request: Request, session: SessionDep, settings: SettingsDep) -> ArtifactsOut:
    """Files listed in the run's manifest, with size and sha256: available once the run's outputs
    are complete (the manifest is written last)."""
    run = crud.get_run(session, run_id=run_id)
    storage, files = artifacts.manifest_files(run, settings=settings)
    base = str(request.url_for("download_artifact", run_id=run.id, path="x"))[:-1]
    return ArtifactsOut(run_id=run.id, storage_uri=storage.uri("runs", run.id), files=[
        ArtifactOut(path=a.path, size=a.size, sha256=a.sha256, url=base + a.path) for a in files.values()])


@router.get("/{run_id}/artifacts/{path:path}", name="download_artifact", summary="Download one output file",
            response_class=StreamingResponse,
            responses={200: {"content": {"application/octet-stream": {}}},
                       400: {"model": ErrorOut, "description": "Not a plain relative file name."},
                       **NOT_FOUND, 409: {"model": ErrorOut, "description": "The outputs are not complete yet."}})
def download_artifact(run_id: str, path: str, session: SessionDep, settings: SettingsDep) -> StreamingResponse:
    """Only files named in the run's manifest are served; anything else is a 400 or 404."""
    run = crud.get_run(session, run_id=run_id)
    storage, artifact = artifacts.find(run, path, settings=settings)
    return StreamingResponse(artifacts.stream(storage, run, artifact), media_type=artifacts.media_type(artifact),
                             headers=artifacts.headers(artifact))
