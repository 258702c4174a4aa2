"""POST /api/runs/{run_id}/export: the run's best checkpoint exported and checked, stored beside it;
GET /api/runs/{run_id}/exports: the table of the run's exports."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query

from api import crud
from api.deps import SessionDep, SettingsDep
from api.errors import Conflict
from api.schemas import ErrorOut

router = APIRouter(prefix="/api/runs", tags=["runs"])


@router.post("/{run_id}/export", summary="Export a run's best checkpoint and check it against PyTorch",
             responses={404: {"model": ErrorOut, "description": "No run with this id."},
                        409: {"model": ErrorOut, "description": "The run has no complete outputs, no best "
                              "checkpoint, or one that cannot be exported (the message says which)."}})
def export_run(run_id: str, session: SessionDep, settings: SettingsDep,
               format: Annotated[Literal["onnx", "torchscript", "openvino", "ncnn"], Query()] = "onnx",  # noqa: A002
               half: bool = False, int8: bool = False, dynamic: bool = False) -> dict[str, Any]:
    """Runs the export and its check in the API's thread pool (seconds to a minute for small models)
    and returns {uri, path, format, size, check}: ``check`` is the export's row of the run's table
    (size_mb, latency_ms_p50, metric, value, reference, drop, max_abs_diff; ``error`` when the check
    could not run). The run's manifest then lists the export and ``exports/report.json``."""
    from core.errors import TrainerError
    from tasks.export import export_run as do_export

    crud.get_run(session, run_id=run_id)  # 404 for an unknown run
    try:
        return do_export(run_id, format, settings, half=half, int8=int8, dynamic=dynamic)
    except TrainerError as e:
        raise Conflict(str(e)) from e


@router.get("/{run_id}/exports", summary="The run's exports and how each compares with PyTorch",
            responses={404: {"model": ErrorOut, "description": "No run with this id."}})
def run_exports(run_id: str, session: SessionDep, settings: SettingsDep) -> dict[str, Any]:
    """{"rows": [...], "machine": ...} from ``exports/report.json`` (empty rows before any export)."""
    from tasks.export import REPORT
    from tasks.storage import Storage

    crud.get_run(session, run_id=run_id)
    return Storage(settings=settings).read_json("runs", run_id, REPORT) or {"rows": [], "machine": None}
