from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from api import crud, datasets_service, uploads
from api.deps import DatasetIdPath, ProjectFilter, SessionDep, SettingsDep
from api.errors import ApiError, Unprocessable
from api.schemas import MAX_ID, DatasetList, DatasetOut, DatasetRegister, DatasetVersion, ErrorOut
from core.spec import MAX_VAL_FRACTION

router = APIRouter(prefix="/api/datasets", tags=["datasets"])

UPLOAD_BODY = {
    "required": True,
    "content": {
        "multipart/form-data": {"schema": {
            "type": "object", "required": ["name", "file"],
            "properties": {
                "name": {"type": "string", "description": "The name to register (letters, digits, . _ -)."},
                "file": {"type": "string", "format": "binary", "description": "A .zip or .tar.gz of the dataset "
                         "folder: YOLO, ImageFolder or COCO. At most VTP_MAX_UPLOAD_BYTES."},
                "task": {"type": "string", "enum": list(datasets_service.TASKS), "description": "Guessed when omitted."},
                "project_id": {"type": "integer"},
                "val_fraction": {"type": "number", "exclusiveMinimum": 0, "maximum": 0.5,
                                 "description": "Share of train moved to a val split when the dataset has none "
                                                "(default 0.2); ignored when it has one."},
            },
        }},
        "application/json": {"schema": {"$ref": "#/components/schemas/DatasetRegister"}},
    },
}


def _out(row: object, versions: dict[str, list[dict]]) -> DatasetOut:
    """The row, with the versions the storage registry lists for its name."""
    out = DatasetOut.model_validate(row)
    out.versions = [DatasetVersion.model_validate(v) for v in versions.get(out.name, []) if v.get("version")]
    return out


def _versions(settings: object) -> dict[str, list[dict]]:
    return {name: rec.versions for name, rec in datasets_service.registry(settings).items()}


class UnsupportedMediaType(ApiError):
    status_code = 415


def _optional_int(value: str | None, field: str) -> int | None:
    if value in (None, ""):
        return None
    if not value.strip().isdecimal() or not 1 <= int(value) <= MAX_ID:  # isdigit() takes "²"
        raise Unprocessable(f"{field}={value!r} is not an id: a whole number from 1 to {MAX_ID}")
    return int(value)


def _optional_fraction(value: str | None) -> float | None:
    if value in (None, ""):
        return None
    try:
        fraction = float(value)
    except ValueError:
        fraction = float("nan")
    if not 0 < fraction <= MAX_VAL_FRACTION:  # nan fails too
        raise Unprocessable(f"val_fraction={value!r} is not a share: use a number above 0 and at most "
                            f"{MAX_VAL_FRACTION} (0.2 puts a fifth of train in val)")
    return fraction


@router.post(
    "", status_code=201, response_model=DatasetOut, openapi_extra={"requestBody": UPLOAD_BODY},
    summary="Upload a dataset archive (multipart) or register a storage URI (JSON)",
    responses={200: {"model": DatasetOut, "description": "The upload's content equals an existing version of "
                                                         "the name: nothing new was stored."},
               409: {"model": ErrorOut, "description": "The name is taken by a dataset registered where it is."},
               413: {"model": ErrorOut, "description": "The upload is over VTP_MAX_UPLOAD_BYTES."},
               415: {"model": ErrorOut}, 422: {"description": "Invalid request, archive or dataset; "
                                               "`problems` lists each finding with its file."}},
)
async def create_dataset(request: Request, response: Response, session: SessionDep, settings: SettingsDep) -> DatasetOut:
    """An upload is streamed to disk (never past the size cap), safely extracted (no `../`,
    absolute paths or links), converted (COCO, VOC, CVAT, LabelMe, Label Studio), given a val split
    when it has none, checked, stored as an immutable version and registered; an upload under an
    imported dataset's name is its next version (`versions` lists them).
    A JSON body `{name, uri}` registers data that already lives in storage, where it is."""
    content_type = request.headers.get("content-type", "").lower()
    if content_type.startswith("multipart/form-data"):
        folder = await run_in_threadpool(datasets_service.upload_dir, settings)
        try:
            upload = await uploads.receive(request, dest_dir=folder, max_bytes=settings.max_upload_bytes)
            name = upload.fields.get("name", "").strip()
            if not name:
                raise Unprocessable("name is required: add a form field `name` with the dataset's name")
            if upload.path is None:
                raise Unprocessable("file is required: add the archive as the form field `file`")
            row, stored = await run_in_threadpool(
                datasets_service.import_archive, session, settings=settings, name=name, archive=upload.path,
                task=upload.fields.get("task"), project_id=_optional_int(upload.fields.get("project_id"), "project_id"),
                filename=upload.filename, val_fraction=_optional_fraction(upload.fields.get("val_fraction")))
        finally:
            await run_in_threadpool(datasets_service.remove_upload, folder)
        if not stored:
            response.status_code = 200  # the same content as an existing version: nothing was created
    elif content_type.startswith("application/json"):
        try:
            body = DatasetRegister.model_validate_json(await request.body())
        except ValidationError as e:
            raise RequestValidationError(e.errors()) from None
        row = await run_in_threadpool(datasets_service.register_uri, session, settings=settings, name=body.name,
                                      uri=body.uri, task=body.task, project_id=body.project_id)
    else:
        raise UnsupportedMediaType("send multipart/form-data with `name` and an archive `file`, "
                                   "or JSON {\"name\": ..., \"uri\": \"s3://...\"}")
    return _out(row, await run_in_threadpool(_versions, settings))


@router.get("", response_model=DatasetList, summary="List datasets")
def list_datasets(session: SessionDep, settings: SettingsDep,
                  project_id: ProjectFilter = None,
                  limit: Annotated[int, Query(ge=1, le=500)] = 100,
                  offset: Annotated[int, Query(ge=0, le=MAX_ID)] = 0) -> DatasetList:
    """Includes datasets registered outside the API (`vtp datasets add`, the samples of `vtp up`)."""
    datasets_service.sync_registry(session, settings=settings)
    rows, total = crud.list_datasets(session, project_id=project_id, limit=limit, offset=offset)
    versions = _versions(settings)
    return DatasetList(items=[_out(r, versions) for r in rows], total=total, limit=limit, offset=offset)


@router.get("/{dataset_id}", response_model=DatasetOut, summary="One dataset, with its validation report",
            responses={404: {"model": ErrorOut}})
def get_dataset(dataset_id: DatasetIdPath, session: SessionDep, settings: SettingsDep) -> DatasetOut:
    return _out(crud.get_dataset(session, dataset_id=dataset_id), _versions(settings))
