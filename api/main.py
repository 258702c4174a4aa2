"""The vtp REST API: ``create_app(settings) -> FastAPI``.

``vtp api`` serves it with uvicorn (``uvicorn api.main:create_app --factory``). At start-up the
database is migrated to the newest schema. Routes under /api need an API token, except
/api/health; /metrics is Prometheus text; /docs is the OpenAPI page.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Depends, FastAPI
from fastapi.concurrency import run_in_threadpool
from fastapi.openapi.utils import get_openapi

from api import log_redact
from api.db import make_engine, migrate, session_factory
from api.deps import get_current_token
from api.errors import install_handlers
from api.events import make_bus
from api.metrics import ApiMetrics, RequestMetricsMiddleware
from api.routes import (
    chat,
    compare,
    datasets,
    export,
    health,
    internal,
    live,
    predict,
    projects,
    prometheus,
    registry,
    runs,
)
from api.schemas import TRAIN_SPEC_SCHEMA, ErrorOut, ValidationErrorOut
from core.settings import Settings, get_settings

log = logging.getLogger("vtp.api")

TAGS = [
    {"name": "health", "description": "Liveness and dependencies; no token needed."},
    {"name": "projects", "description": "Group datasets and runs."},
    {"name": "datasets", "description": "Upload archives or register storage URIs; each import is validated."},
    {"name": "runs", "description": "Start, follow, cancel and retry training runs; their metrics and files."},
    {"name": "models", "description": "The model registry: runs promoted to named, immutable versions with aliases."},
    {"name": "metrics", "description": "Prometheus metrics of the API."},
    {"name": "chat", "description": "Natural language (Korean or English) to a training run."},
    {"name": "callbacks", "description": "Trainer callbacks, authenticated by the run's token (not an API token)."},
]

NEEDS_TOKEN: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorOut, "description": "No API token, or one that is unknown or revoked."},
}
NEEDS_RUN_TOKEN: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorOut, "description": "No run token, or an invalid or expired one."},
    403: {"model": ErrorOut, "description": "The run token belongs to another run."},
    404: {"model": ErrorOut, "description": "No run with this id."},
    409: {"model": ErrorOut, "description": "The run has ended: no more heartbeats, metrics or events are taken."},
}


def include_routes(app: FastAPI) -> None:
    """Routers carry their full prefix (/api/...): FastAPI reports the route template relative to
    the router, and the request metrics are labelled with it.

    Everything under /api except /api/health needs a person's API token. The trainer callbacks
    (/api/internal/runs/...) authenticate with run tokens instead (api.deps.RunTokenClaims), so
    they are included without ``person``."""
    person = [Depends(get_current_token)]
    app.include_router(health.router)
    for module in (projects, datasets, runs, chat, compare, export, registry):
        app.include_router(module.router, dependencies=person, responses=NEEDS_TOKEN)
    # UI helpers: predict, logs, dataset previews
    app.include_router(predict.router, dependencies=person, responses=NEEDS_TOKEN)
    app.include_router(prometheus.router)
    app.include_router(internal.router, responses=NEEDS_RUN_TOKEN)  # run tokens, checked per route
    app.include_router(live.router)  # the API token is checked inside (browsers cannot set headers)


def create_app(settings: Settings | None = None, *, migrate_on_start: bool = True) -> FastAPI:
    settings = settings or get_settings()
    log_redact.install(settings.home / "logs")  # no token in the access log (?token=), logs 0700
    engine = make_engine(settings.database_url)
    sessions = session_factory(engine)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if migrate_on_start:
            await run_in_threadpool(migrate, settings.database_url)
        # Long-lived objects from start-up out of the collector's way, and fewer young collections:
        # full-heap GC pauses were the tail of the callback latency (bench/callbacks.py)
        gc.freeze()
        gc.set_threshold(50_000, 50, 100)
        log.info("vtp API at %s (database %s, storage %s, Prefect %s)", settings.api_url,
                 engine.url.render_as_string(hide_password=True), settings.storage_url, settings.prefect_api_url)
        from api.ledger import Reconciler
        from api.stale import StaleMonitor

        monitor = StaleMonitor(sessions, settings).start()
        reconciler = Reconciler(sessions, settings).start()  # runs started outside the API (api/ledger.py)
        try:
            yield
        finally:
            reconciler.stop()
            monitor.stop()
            await app.state.events.close()
            engine.dispose()

    app = FastAPI(
        title="vtp",
        summary="Self-hosted vision training: datasets, runs on Prefect, metrics and checkpoints.",
        description="Send `Authorization: Bearer <API token>` on every /api route except /api/health "
                    "(`vtp tokens create NAME` prints a token; `vtp up` saves one to $VTP_HOME/api_token).",
        version="0.1.0",
        openapi_tags=TAGS,
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.engine = engine
    app.state.sessions = sessions
    app.state.metrics = ApiMetrics(sessions)
    app.state.events = make_bus(settings.redis_url)
    app.add_middleware(RequestMetricsMiddleware, metrics=lambda: app.state.metrics)
    install_handlers(app)
    include_routes(app)
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app


def _openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's schema plus TrainSpec (RunCreate.spec refers to it) and DatasetRegister (the JSON
    form of POST /api/datasets, whose body the route reads itself). Every 422 is the API's own
    error body (``{detail, errors}``, api.errors), not FastAPI's list of validation errors."""
    if app.openapi_schema:
        return app.openapi_schema
    from api.schemas import DatasetRegister

    schema = get_openapi(title=app.title, version=app.version, summary=app.summary, description=app.description,
                         routes=app.routes, tags=app.openapi_tags)
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    for name, sub in TRAIN_SPEC_SCHEMA.get("$defs", {}).items():
        components.setdefault(name, sub)
    components["TrainSpec"] = {k: v for k, v in TRAIN_SPEC_SCHEMA.items() if k != "$defs"}
    components["DatasetRegister"] = DatasetRegister.model_json_schema(ref_template="#/components/schemas/{model}")
    components.pop("ValidationError", None)
    components["HTTPValidationError"] = ValidationErrorOut.model_json_schema(
        ref_template="#/components/schemas/{model}")
    spec = components["RunCreate"]["properties"]["spec"]
    components["RunCreate"]["properties"]["spec"] = {
        "allOf": [{"$ref": "#/components/schemas/TrainSpec"}],
        **{k: v for k, v in spec.items() if k in ("description", "examples", "title")},
    }
    app.openapi_schema = schema
    return schema
