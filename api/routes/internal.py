"""Trainer callbacks: ``POST /api/internal/runs/{run_id}/heartbeat | metrics | done``.

Authenticated by the run's token (a JWT for that run only), not by a person's API token. The
flow gets no token from Prefect, only a claim ticket, which ``POST .../token`` exchanges once per
attempt for a run token (api/runs_service.claim_run_token). The heartbeat answers with a renewed
token and whether the run should stop. Metric posts are idempotent by (epoch, name), so a retried
post never duplicates a point. ``done`` publishes only a checkpoint under the run's own storage
folder and final metrics the run reported.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from api import crud, runs_service
from api.deps import RunTokenClaims, SessionDep, SettingsDep
from api.metrics import callback_timer
from api.run_states import SETTLED_STATES, Actor
from api.schemas import ApiIn, RunOut
from api.security import RunTokenInvalid, mint_run_token, verify_run_ticket

router = APIRouter(prefix="/api/internal/runs", tags=["callbacks"])


class HeartbeatOut(BaseModel):
    token: str = Field(description="A renewed run token; use it for the next callbacks.")
    cancel: bool = Field(description="True when the run was cancelled: stop training and report done.")


MAX_EPOCHS = 1_000_000
MetricName = Annotated[str, StringConstraints(min_length=1, max_length=200)]  # metric_points.name is VARCHAR(200)


class MetricsIn(ApiIn):
    model_config = ConfigDict(allow_inf_nan=False)  # JSON has no NaN: one stored would break every later read

    epoch: int = Field(ge=1, le=MAX_EPOCHS, description="1-based epoch number.")
    epochs: int | None = Field(default=None, ge=1, le=MAX_EPOCHS)
    metrics: dict[MetricName, float] = Field(max_length=500, description="Finite numbers only (no NaN or inf).")


class MetricsOut(BaseModel):
    stored: int


class DoneIn(ApiIn):
    model_config = ConfigDict(allow_inf_nan=False)

    state: Literal["completed", "failed", "cancelled"]
    metrics: dict[MetricName, float] | None = Field(default=None, max_length=500)
    checkpoint_uri: str | None = Field(default=None, max_length=2000)
    error: str | None = Field(default=None, max_length=20_000, description="Plain text; never rendered as HTML.")
    epochs_done: int | None = Field(default=None, ge=0, le=MAX_EPOCHS)


class ClaimIn(ApiIn):
    attempt: int = Field(ge=1, le=1000, description="Prefect's run_count of the attempt claiming (1, 2, ...).")
    flow_run_id: str = Field(min_length=1, max_length=64, description="The Prefect flow run executing the run.")


class ClaimOut(BaseModel):
    token: str = Field(description="The run token for this attempt's callbacks (renewed by heartbeats).")


_ticket_bearer = HTTPBearer(auto_error=False, scheme_name="RunTicket",
                            description="The claim ticket vtp passed with the flow run (token exchange only).")


def _ticket(run_id: str, settings: SettingsDep,
            credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_ticket_bearer)]) -> str:
    """The run's claim ticket, verified before the body is read (an unauthenticated call learns nothing)."""
    if credentials is None or not credentials.credentials:
        raise RunTokenInvalid("no claim ticket: send the run's claim token as `Authorization: Bearer <ticket>`")
    verify_run_ticket(credentials.credentials, run_id, settings)  # 401 / 403
    return credentials.credentials


def publish(request: Request, run_id: str, event: dict[str, Any]) -> None:
    request.app.state.events.publish(run_id, event)


# Which attempt of the run (Prefect's run_count) sends a callback. Optional: without it the attempt is
# not checked (clients from before attempts were fenced).
AttemptHeader = Annotated[int | None, Header(alias="X-Vtp-Attempt", ge=1, le=1000,
                                             description="The attempt of the run sending the callback (1, 2, ...).")]


def _refuse(session, run_id: str, attempt: int | None = None) -> HTTPException:
    """Why a callback found no live run: unknown id (404), already ended (409), or sent by an attempt
    that a newer one replaced (409 whose detail starts with "superseded": the trainer stops)."""
    run = crud.get_run(session, run_id=run_id)  # raises the API's 404 for an unknown id
    if run.state not in SETTLED_STATES and crud.attempt_superseded(run, attempt):
        return HTTPException(409, f"superseded: attempt {attempt} of run {run_id} was replaced "
                                  f"({'by attempt ' + str(run.attempt) if run.attempt > (attempt or 0) else 'it was declared crashed and is retried'}); "
                                  "this attempt must stop without publishing")
    return HTTPException(409, f"run {run_id} already ended ({run.state}); no more callbacks are taken")


def _publish_state(request: Request, session, run_id: str) -> None:
    run = crud.get_run(session, run_id=run_id)
    publish(request, run_id, {"type": "state", "run": RunOut.model_validate(run).model_dump(mode="json")})


@router.post("/{run_id}/token", response_model=ClaimOut, summary="Exchange the claim ticket for a run token",
             responses={401: {"description": "No valid claim ticket"}, 403: {"description": "Another run's ticket"},
                        409: {"description": "Already exchanged, not running, or superseded"}})
def claim_token(run_id: str, body: ClaimIn, request: Request, session: SessionDep, settings: SettingsDep,
                ticket: Annotated[str, Depends(_ticket)]) -> ClaimOut:
    """Once per attempt: the flow sends the ticket from its parameters and gets the run token. A
    second exchange for the same attempt fails the run (someone else holds the ticket)."""
    claimed = runs_service.claim_run_token(session, run_id=run_id, ticket=ticket,
                                           attempt=body.attempt, flow_run_id=body.flow_run_id, settings=settings)
    if claimed.just_started:
        _publish_state(request, session, run_id)
    return ClaimOut(token=claimed.token)


@router.post("/{run_id}/heartbeat", response_model=HeartbeatOut, summary="The trainer is alive")
def heartbeat(run_id: str, request: Request, claims: RunTokenClaims, session: SessionDep,
              settings: SettingsDep, attempt: AttemptHeader = None) -> HeartbeatOut:
    with callback_timer(request.app, "heartbeat"):
        touched = crud.touch_live_run(session, run_id=run_id, attempt=attempt)
        if touched is None:
            raise _refuse(session, run_id, attempt)
        session.commit()
        if touched.just_started:
            _publish_state(request, session, run_id)
        return HeartbeatOut(token=mint_run_token(run_id, settings), cancel=touched.cancel_requested)


@router.post("/{run_id}/metrics", response_model=MetricsOut, summary="One epoch's metrics")
def metrics(run_id: str, body: MetricsIn, request: Request, claims: RunTokenClaims,
            session: SessionDep, attempt: AttemptHeader = None) -> MetricsOut:
    """Hot path (every trainer, every epoch): one UPDATE … RETURNING and one upsert, one commit."""
    with callback_timer(request.app, "metrics"):
        touched = crud.touch_live_run(session, run_id=run_id, epoch=body.epoch, attempt=attempt)
        if touched is None:
            raise _refuse(session, run_id, attempt)
        stored = crud.record_metrics(session, run_id=run_id, epoch=body.epoch, metrics=body.metrics)  # commits
        if touched.just_started:
            _publish_state(request, session, run_id)
        publish(request, run_id, {"type": "metrics", "epoch": body.epoch, "epochs": body.epochs,
                                  "metrics": body.metrics})
        return MetricsOut(stored=stored)


class EventIn(ApiIn):
    kind: Literal["resumed", "resume_failed", "hung", "time_limit"]
    message: str = Field(max_length=2000)
    epoch: int | None = Field(default=None, ge=0, le=1_000_000)
    attempt: int | None = Field(default=None, ge=1, le=1000)


@router.post("/{run_id}/events", response_model=RunOut, summary="Something happened to the run (e.g. resumed)")
def event(run_id: str, body: EventIn, request: Request, claims: RunTokenClaims, session: SessionDep,
          attempt: AttemptHeader = None) -> RunOut:
    run = crud.get_run(session, run_id=run_id)
    if run.state in SETTLED_STATES or (body.kind != "hung" and crud.attempt_superseded(run, attempt)):
        raise _refuse(session, run_id, attempt)
    crud.add_run_event(session, run=run, kind=body.kind, message=body.message, epoch=body.epoch,
                       attempt=body.attempt)
    out = RunOut.model_validate(run)
    publish(request, run_id, {"type": "state", "run": out.model_dump(mode="json")})
    return out


@router.post("/{run_id}/done", response_model=RunOut, summary="The run ended")
def done(run_id: str, body: DoneIn, request: Request, claims: RunTokenClaims, session: SessionDep,
         settings: SettingsDep, attempt: AttemptHeader = None) -> RunOut:
    with callback_timer(request.app, "done"):
        run = crud.get_run(session, run_id=run_id)
        if run.state not in SETTLED_STATES and crud.attempt_superseded(run, attempt):
            raise _refuse(session, run_id, attempt)
        if run.state not in SETTLED_STATES:  # a repeated done (a retried post) changes nothing
            # 422 before anything is stored: a checkpoint outside the run's folder, metrics never reported
            runs_service.check_done(session, run=run, settings=settings, metrics=body.metrics,
                                    checkpoint_uri=body.checkpoint_uri)
            fields: dict[str, Any] = {"final_metrics": body.metrics, "checkpoint_uri": body.checkpoint_uri}
            if body.epochs_done is not None:
                fields["epochs_done"] = body.epochs_done
            crud.update_run(session, run=run, **{k: v for k, v in fields.items() if v is not None})
            crud.finish_run(session, run=run, state=body.state, by=Actor.TRAINER,
                            error=runs_service.plain_error(body.error))
            publish(request, run_id, {"type": "state", "run": RunOut.model_validate(run).model_dump(mode="json")})
        return RunOut.model_validate(run)
