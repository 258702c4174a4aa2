"""JSON errors a person can act on, for every route.

Every error body is ``{"detail": "<what went wrong and what to do>", ...}``; some add fields
(``errors`` for spec problems, ``problems`` for dataset findings, ``run_id`` when a run was stored).
Unexpected exceptions become a 500 that names no internals; the traceback goes to the log.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from api.security import RunTokenForbidden, RunTokenInvalid
from core.errors import DatasetError, SpecError, StorageError, VtpError
from core.spec import explain

log = logging.getLogger("vtp.api")
BODY_HINT = "send JSON with `Content-Type: application/json`, or multipart/form-data for uploads"


class ApiError(VtpError):
    """A VtpError with an HTTP status and optional extra body fields."""

    status_code = 400

    def __init__(self, message: str, **extra: Any):
        super().__init__(message)
        self.extra = extra


class NotFound(ApiError):
    status_code = 404


class Conflict(ApiError):
    status_code = 409


class PayloadTooLarge(ApiError):
    status_code = 413


class Unprocessable(ApiError):
    status_code = 422


class ServiceUnavailable(ApiError):
    status_code = 503


def error_response(status: int, detail: str, headers: dict[str, str] | None = None, **extra: Any) -> JSONResponse:
    return JSONResponse({"detail": detail, **jsonable_encoder(extra)}, status_code=status, headers=headers)


def _request_problems(exc: RequestValidationError) -> list[str]:
    """FastAPI's own validation errors, one line per field: 'limit: Input should be ...'."""
    lines = []
    for err in exc.errors():
        if err.get("type") in ("json_invalid", "value_error.jsondecode") or err.get("msg") == "JSON decode error":
            lines.append("the request body is not valid JSON: send a JSON object, e.g. {\"spec\": {...}}")
            continue
        loc = [str(p) for p in err.get("loc", ()) if p not in ("body", "query", "path", "header")]
        where = ".".join(loc) or "request body"
        lines.append(f"{where}: {err.get('msg', 'is not valid')}")
    return lines


class RefuseNul:
    """ASGI middleware: a request whose path or query string holds a NUL character (``%00``) gets a
    422 before any route sees it. No vtp id or name has one, and PostgreSQL refuses NUL in text with
    an error, so ``GET /api/runs/x%00`` would otherwise be a 500 there and a 404 on SQLite."""

    def __init__(self, app: Any):
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and ("\x00" in scope.get("path", "") or b"%00" in scope.get("query_string", b"")):
            line = "the URL contains a NUL character (%00): no vtp id, name or parameter has one"
            await error_response(422, line, errors=[line])(scope, receive, send)
            return
        await self.app(scope, receive, send)


def install_handlers(app: FastAPI) -> None:
    app.add_middleware(RefuseNul)

    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status_code, str(exc), **exc.extra)

    @app.exception_handler(SpecError)
    async def _spec_error(_: Request, exc: SpecError) -> JSONResponse:
        return error_response(422, str(exc), errors=str(exc).splitlines())

    @app.exception_handler(ValidationError)
    async def _validation_error(_: Request, exc: ValidationError) -> JSONResponse:
        text = explain(exc)
        return error_response(422, text, errors=text.splitlines())

    @app.exception_handler(RequestValidationError)
    async def _request_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        lines = _request_problems(exc)
        return error_response(422, "; ".join(lines), errors=lines)

    @app.exception_handler(DatasetError)
    async def _dataset_error(_: Request, exc: DatasetError) -> JSONResponse:
        return error_response(422, str(exc), problems=[_problem(p) for p in exc.problems])

    @app.exception_handler(StorageError)
    async def _storage_error(_: Request, exc: StorageError) -> JSONResponse:
        return error_response(503, str(exc))

    @app.exception_handler(VtpError)
    async def _vtp_error(_: Request, exc: VtpError) -> JSONResponse:
        return error_response(400, str(exc))

    @app.exception_handler(RunTokenInvalid)
    async def _run_token_invalid(_: Request, exc: RunTokenInvalid) -> JSONResponse:
        return error_response(401, str(exc), headers={"WWW-Authenticate": "Bearer"})

    @app.exception_handler(RunTokenForbidden)
    async def _run_token_forbidden(_: Request, exc: RunTokenForbidden) -> JSONResponse:
        return error_response(403, str(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = exc.detail if isinstance(exc.detail, str) else jsonable_encoder(exc.detail)
        if exc.status_code == 400:
            # Only FastAPI and Starlette raise a plain 400: a body that cannot be parsed at all (not
            # UTF-8, broken multipart). vtp answers every unreadable request with its 422
            line = f"the request body could not be read ({str(detail).rstrip('.')}): {BODY_HINT}"
            return error_response(422, line, errors=[line])
        if exc.status_code == 404 and detail == "Not Found":
            detail = "no such endpoint: see /docs for the API"
        elif exc.status_code == 405:
            detail = "this endpoint does not take that HTTP method: see /docs for the ones it takes"
        return JSONResponse({"detail": detail}, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error on %s %s", request.method, request.url.path, exc_info=exc)
        return error_response(500, "internal error in the vtp API; the API log has the details")


def _problem(p: Any) -> Any:
    if hasattr(p, "severity"):
        out = {"severity": p.severity, "file": p.file, "message": p.message}
        if getattr(p, "message_ko", None):
            out["message_ko"] = p.message_ko  # the web app's Korean page shows this one
        return out
    return str(p)
