from __future__ import annotations

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from api.deps import SessionDep, SettingsDep
from api.schemas import Check, HealthOut
from core.prefect_api import server_healthy

router = APIRouter(tags=["health"])


@router.get("/api/health", response_model=HealthOut, summary="Is the API up, and can it reach its database and Prefect?",
            responses={503: {"model": HealthOut, "description": "The database is unreachable."}})
async def health(session: SessionDep, settings: SettingsDep) -> JSONResponse:
    """No token needed. 200 while the database answers (``status`` is ``degraded`` when Prefect does
    not, as runs cannot start then); 503 when the database does not."""
    try:
        await run_in_threadpool(session.execute, text("SELECT 1"))
        database = Check(ok=True)
    except SQLAlchemyError as e:
        database = Check(ok=False, detail=f"database unreachable: {type(e).__name__}: check VTP_DATABASE_URL")
    prefect_ok = await run_in_threadpool(server_healthy, settings.prefect_api_url, 1.0)
    prefect = Check(ok=prefect_ok, detail="" if prefect_ok else f"no Prefect server at {settings.prefect_api_url}: "
                    "start the stack with `vtp up`")
    body = HealthOut(status="ok" if prefect_ok else "degraded", database=database, prefect=prefect,
                     storage_url=settings.storage_url, api_url=settings.api_url)
    return JSONResponse(body.model_dump(), status_code=200 if database.ok else 503)
