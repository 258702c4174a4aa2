from __future__ import annotations

from fastapi import APIRouter, Response
from fastapi.concurrency import run_in_threadpool

from api.deps import MetricsDep
from api.metrics import CONTENT_TYPE

router = APIRouter(tags=["metrics"])


@router.get("/metrics", summary="Prometheus metrics", response_class=Response,
            responses={200: {"content": {CONTENT_TYPE: {}}, "description": "Prometheus text format"}})
async def metrics(m: MetricsDep) -> Response:
    """Runs by state, request counts and latency by route template, callback timings. Not under
    /api and needs no token, as Prometheus scrapers expect; it exposes counts only."""
    return Response(await run_in_threadpool(m.render), media_type=CONTENT_TYPE)
