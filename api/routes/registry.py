"""The model registry over HTTP (api.registry): promote a run to a named model version, list and
show models, move aliases. Versions are immutable: there is no route that changes one."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response
from pydantic import Field

from api import registry
from api.compare import find_run
from api.deps import SessionDep, SettingsDep
from api.schemas import ApiIn, ErrorOut

router = APIRouter(prefix="/api/models", tags=["models"])
NOT_FOUND = {404: {"model": ErrorOut, "description": "No such model, version or alias."}}


class PromoteIn(ApiIn):
    run: str = Field(max_length=120, description="The run: its id, an id prefix (8+ characters) or its name.")
    name: str | None = Field(default=None, max_length=64, description="The model's name (made when new); "
                             "default <model>-<dataset> of the run (yolo11n-shapes-detect).")
    alias: list[str] = Field(default_factory=list, max_length=8,
                             description="Aliases to point at the new version (production, staging, ...).")
    export: str | None = Field(default=None, max_length=200,
                               description="A checked export of the run to ship with it: its format (onnx) or its "
                                           "path (exports/model-int8_openvino_model). None: the PyTorch checkpoint only.")
    description: str = Field(default="", max_length=2000)


class AliasIn(ApiIn):
    version: str = Field(max_length=40, description="The version: 3, v3, another alias, or latest.")


@router.get("", summary="Registered models with their aliases and latest version")
def list_models(session: SessionDep) -> dict[str, Any]:
    return {"models": [registry.model_dict(m, versions=False) for m in registry.list_models(session)]}


@router.post("", status_code=201, summary="Promote a run to a new version of a model",
             responses={400: {"model": ErrorOut, "description": "A name or alias that breaks the rules."},
                        404: {"model": ErrorOut, "description": "No such run."},
                        409: {"model": ErrorOut, "description": "The run has not completed, has no complete "
                              "outputs, or has no such export (the message says which)."}})
def promote(body: PromoteIn, session: SessionDep, settings: SettingsDep) -> dict[str, Any]:
    """The run's best checkpoint (and the export named) copied under ``models/<name>/<id>/`` and
    recorded as version N+1 of ``name`` (made when new); ``warnings`` says when the MLflow mirror failed."""
    run = find_run(session, body.run)
    version, warnings = registry.promote(session, settings, run, body.name, body.alias, body.export, body.description)
    return {**registry.version_dict(version), "warnings": warnings}


@router.get("/{name}", summary="A model with its versions (newest first) and aliases", responses=NOT_FOUND)
def show_model(name: str, session: SessionDep) -> dict[str, Any]:
    return registry.model_dict(registry.get_model(session, name))


@router.get("/{name}/versions/{ref}", summary="One version: by number (3, v3), alias or latest", responses=NOT_FOUND)
def show_version(name: str, ref: str, session: SessionDep) -> dict[str, Any]:
    return registry.version_dict(registry.resolve(session, name, ref))


@router.put("/{name}/aliases/{alias}", summary="Point an alias at a version (moving it)",
            responses={**NOT_FOUND, 400: {"model": ErrorOut, "description": "An alias that breaks the rules "
                                                                         "(latest, a version like v3, other characters)."}})
def set_alias(name: str, alias: str, body: AliasIn, session: SessionDep, settings: SettingsDep) -> dict[str, Any]:
    version, warnings = registry.set_alias(session, settings, name, alias, body.version)
    return {**registry.version_dict(version), "warnings": warnings}


@router.delete("/{name}/aliases/{alias}", status_code=204, summary="Remove an alias", responses=NOT_FOUND)
def remove_alias(name: str, alias: str, session: SessionDep, settings: SettingsDep) -> Response:
    registry.remove_alias(session, settings, name, alias)
    return Response(status_code=204)
