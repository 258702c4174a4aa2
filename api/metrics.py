"""Prometheus metrics of one API app (its own registry, so several apps in one process never clash).

- ``vtp_runs{state}``: runs by state, read from the database at scrape time.
- ``vtp_http_requests_total{method,route,status}`` and ``vtp_http_request_seconds{method,route}``:
  labelled by the route *template* (``/api/runs/{run_id}``), never the raw path.
- ``vtp_callback_seconds{kind}``: time spent handling trainer callbacks (heartbeat, metrics, done);
  the callback routes observe it with ``with callback_timer(request.app, "heartbeat"): ...``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("vtp.api")
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
CALLBACK_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class RunsByState(Collector):
    def __init__(self, sessions: sessionmaker[Session]):
        self.sessions = sessions

    @staticmethod
    def _family() -> GaugeMetricFamily:
        return GaugeMetricFamily("vtp_runs", "Runs by state (from the database).", labels=["state"])

    def describe(self) -> Iterator[GaugeMetricFamily]:
        yield self._family()  # registration must not query the database (it may not be migrated yet)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        from api.crud import runs_by_state

        family = self._family()
        try:
            with self.sessions() as session:
                counts = runs_by_state(session)
        except SQLAlchemyError as e:  # the request metrics are still worth scraping
            log.warning("vtp_runs left out of /metrics: the database did not answer (%s)", type(e).__name__)
            counts = {}
        for state, n in counts.items():
            family.add_metric([state], n)
        yield family


class ApiMetrics:
    def __init__(self, sessions: sessionmaker[Session]):
        self.registry = CollectorRegistry()
        self.requests = Counter("vtp_http_requests", "HTTP requests by route template and status.",
                                ["method", "route", "status"], registry=self.registry)
        self.latency = Histogram("vtp_http_request_seconds", "HTTP request latency by route template.",
                                 ["method", "route"], registry=self.registry)
        self.callback_seconds = Histogram("vtp_callback_seconds", "Time handling trainer callbacks.",
                                          ["kind"], buckets=CALLBACK_BUCKETS, registry=self.registry)
        self.registry.register(RunsByState(sessions))

    def render(self) -> bytes:
        return generate_latest(self.registry)


def of(app: Any) -> ApiMetrics:
    return app.state.metrics


@contextmanager
def callback_timer(app: Any, kind: str) -> Iterator[None]:
    """Observe ``vtp_callback_seconds{kind}`` around a callback's handling (errors included)."""
    started = time.perf_counter()
    try:
        yield
    finally:
        of(app).callback_seconds.labels(kind=kind).observe(time.perf_counter() - started)


class RequestMetricsMiddleware:
    """Pure ASGI (streams and WebSockets pass through untouched); HTTP requests only."""

    def __init__(self, app: ASGIApp, metrics: Callable[[], ApiMetrics]):
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            m = self.metrics()
            m.requests.labels(scope["method"], template, str(status)).inc()
            m.latency.labels(scope["method"], template).observe(time.perf_counter() - started)
