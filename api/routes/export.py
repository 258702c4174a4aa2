"""POST /api/runs/{run_id}/export: the run's best checkpoint as ONNX or TorchScript, stored beside it."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query

from api import crud
from api.deps import SessionDep, SettingsDep
from api.errors import Conflict
from api.schemas import ErrorOut

router = APIRouter(prefix="/api/runs", tags=["runs"])


@router.post("/{run_id}/export", summary="Export a run's best checkpoint (ONNX or TorchScript)",
             responses={404: {"model": ErrorOut, "description": "No run with this id."},
                        409: {"model": ErrorOut, "description": "The run has no complete outputs, no best "
                              "checkpoint, or one that cannot be exported (the message says which)."}})
def export_run(run_id: str, session: SessionDep, settings: SettingsDep,
               format: Annotated[Literal["onnx", "torchscript"], Query()] = "onnx") -> dict[str, Any]:  # noqa: A002
    """Runs the export in the API's thread pool (seconds for small models) and returns
    {uri, path, format, size}; the run's manifest then lists ``exports/model.<ext>``."""
    from core.errors import TrainerError
    from tasks.export import export_run as do_export

    crud.get_run(session, run_id=run_id)  # 404 for an unknown run
    try:
        return do_export(run_id, format, settings)
    except TrainerError as e:
        raise Conflict(str(e)) from e
