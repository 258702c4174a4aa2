"""Named dependencies for routes (full-stack-fastapi-template style): ``SessionDep``,
``SettingsDep``, ``CurrentToken`` (a person's API token) and ``RunTokenClaims`` (a trainer's run
token, for the callback routes under /api/internal/runs/{run_id}/...).

Everything comes from ``request.app.state``, set by ``create_app``, so two apps with different
settings (tests) never share an engine.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Path, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from api.metrics import ApiMetrics
from api.models import ApiToken
from api.schemas import MAX_ID
from api.security import verify_run_token
from api.tokens import TokenRejected, authenticate
from core.settings import Settings

_bearer = HTTPBearer(auto_error=False, description="An API token: `vtp tokens create NAME` prints one.")
_run_bearer = HTTPBearer(auto_error=False, scheme_name="RunToken",
                         description="The run token vtp passed to the training flow (callbacks only).")
MISSING_TOKEN = ("this endpoint needs an API token: send `Authorization: Bearer <token>`; create one with "
                 "`vtp tokens create NAME` (the token `vtp up` made is in $VTP_HOME/api_token)")


def get_settings_dep(request: Request) -> Settings:
    return request.app.state.settings


def get_session(request: Request) -> Iterator[Session]:
    with request.app.state.sessions() as session:
        yield session


def get_metrics(request: Request) -> ApiMetrics:
    return request.app.state.metrics


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
SessionDep = Annotated[Session, Depends(get_session)]
MetricsDep = Annotated[ApiMetrics, Depends(get_metrics)]
BearerDep = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]

# Ids in paths and filters: positive and within the INTEGER columns, so a huge number is a 422
ProjectIdPath = Annotated[int, Path(ge=1, le=MAX_ID)]
DatasetIdPath = Annotated[int, Path(ge=1, le=MAX_ID)]
ProjectFilter = Annotated[int | None, Query(ge=1, le=MAX_ID, description="Only this project's items")]


def _unauthorized(message: str) -> HTTPException:
    return HTTPException(status_code=401, detail=message, headers={"WWW-Authenticate": "Bearer"})


def get_current_token(session: SessionDep, credentials: BearerDep) -> ApiToken:
    if credentials is None or not credentials.credentials:
        raise _unauthorized(MISSING_TOKEN)
    try:
        return authenticate(session, credentials.credentials)
    except TokenRejected as e:
        raise _unauthorized(str(e)) from None


CurrentToken = Annotated[ApiToken, Depends(get_current_token)]


def get_run_token_claims(
    run_id: str,
    settings: SettingsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_run_bearer)],
) -> dict[str, Any]:
    """The claims of a valid run token for the path's ``run_id``: 401 when missing or invalid
    (bad signature, alg none, expired), 403 when it belongs to another run."""
    if credentials is None or not credentials.credentials:
        raise _unauthorized("this callback needs the run's token: send `Authorization: Bearer <run token>`")
    return verify_run_token(credentials.credentials, run_id, settings)


RunTokenClaims = Annotated[dict[str, Any], Depends(get_run_token_claims)]
