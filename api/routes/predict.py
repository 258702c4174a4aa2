"""Routes the web UI needs beyond the core API: predictions with a trained checkpoint, a run's
Prefect logs, sample images of a dataset with their labels drawn, and generated sample datasets."""

from __future__ import annotations

import base64
import hashlib
import io
import logging
import os
import shutil
import threading
from collections import OrderedDict
from pathlib import Path
from threading import Lock
from types import ModuleType
from typing import Annotated, Any

from fastapi import APIRouter, File, Query, UploadFile
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from api import artifacts, crud, datasets_service
from api.deps import DatasetIdPath, SessionDep, SettingsDep
from api.errors import Conflict, NotFound, Unprocessable
from api.schemas import ApiIn, DatasetOut, ErrorOut
from core import frameworks
from core.errors import TrainerError
from core.settings import Settings
from core.spec import framework_of
from tasks.storage import download_files

router = APIRouter(tags=["runs"])
log = logging.getLogger("vtp.api.predict")
MAX_IMAGE_BYTES = 32 * 1024**2
_MODELS: OrderedDict[str, Any] = OrderedDict()
_MODELS_LOCK = Lock()
MODEL_CACHE_SIZE = 4


class PredictOut(BaseModel):
    run_id: str
    task: str
    predictions: list[dict[str, Any]] = Field(description="classify: top-5 {class, confidence}; others: "
                                                          "{class, confidence, box [x1,y1,x2,y2]} per object")
    png_base64: str = Field(description="The image with the predictions drawn, as a base64 PNG.")


class LogLine(BaseModel):
    timestamp: str
    level: str
    message: str


class LogsOut(BaseModel):
    run_id: str
    lines: list[LogLine]


class SampleImage(BaseModel):
    path: str
    caption: str
    png_base64: str


class SamplesOut(BaseModel):
    dataset_id: int
    items: list[SampleImage]


class SampleCreate(ApiIn):
    name: str = Field(examples=["shapes-detect"], description="shapes-detect, -segment, -classify, -pose or -obb")


def _png(image: Any) -> str:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


def _plugin(run: Any) -> ModuleType:
    """The trainer plugin package of the run's framework (from the framework registry), with the
    entry points a prediction needs (``CHECKPOINT``, ``load_predictor``); 409 when there is none."""
    spec = run.spec or {}
    framework = spec.get("framework") or framework_of(str(spec.get("model") or ""))
    try:
        module = frameworks.plugin(framework or "")
    except KeyError:
        raise Conflict(f"run {run.id} was trained with framework {framework!r}, which is not installed here: "
                       "it cannot predict") from None
    if not all(hasattr(module, name) for name in ("CHECKPOINT", "load_predictor")):
        raise Conflict(f"the {framework} trainer plugin does not predict (it has no load_predictor): run {run.id} "
                       "cannot predict here")
    return module


def _checkpoint(run: Any, published: str, settings: Settings) -> Path:
    """The run's published checkpoint ``published`` (a file, or a folder of files, as its plugin
    names it), fetched from storage once into the cache (checked against the manifest's sha256)."""
    storage, files = artifacts.manifest_files(run, settings=settings)
    wanted = {rel: a for rel, a in files.items() if rel == published or rel.startswith(published + "/")}
    if not wanted:
        raise NotFound(f"run {run.id} has no file {published!r}: see GET /api/runs/{run.id}/artifacts")
    key = hashlib.sha256("".join(f"{rel}\0{a.sha256}\n" for rel, a in sorted(wanted.items())).encode()).hexdigest()
    folder = settings.cache_root / "predict" / run.id / key[:16]
    if not folder.exists():
        part = folder.with_name(f"{folder.name}.{os.getpid()}.{threading.get_ident()}.part")
        shutil.rmtree(part, ignore_errors=True)
        download_files(storage, part, "runs", run.id,
                       files={rel: {"size": a.size, "sha256": a.sha256} for rel, a in wanted.items()})
        try:
            part.rename(folder)
        except OSError:  # another request put the same files there first
            shutil.rmtree(part, ignore_errors=True)
    return folder / published


def _model(key: str, loader: Any) -> Any:
    """A small LRU of loaded models, keyed by checkpoint file."""
    with _MODELS_LOCK:
        if key in _MODELS:
            _MODELS.move_to_end(key)
            return _MODELS[key]
    model = loader()
    with _MODELS_LOCK:
        _MODELS[key] = model
        while len(_MODELS) > MODEL_CACHE_SIZE:
            _MODELS.popitem(last=False)
    return model


def _predict(run: Any, data: bytes, filename: str, settings: Settings, conf: float = 0.25) -> PredictOut:
    from PIL import Image

    from trainers.common.images import HIGH_DEPTH_MODES

    try:
        image = Image.open(io.BytesIO(data))
        image.load()
        if image.mode not in HIGH_DEPTH_MODES:  # 16-bit and float images go to the plugin as they are: it
            image = image.convert("RGB")        # scales them as the run's training did (convert clips at 255)
    except Exception as e:  # noqa: BLE001 - any decoding failure means the upload is not an image
        raise Unprocessable(f"{filename or 'the upload'} is not an image PIL can read ({type(e).__name__}): "
                            "send a .jpg, .png, .bmp or .webp file") from None
    spec = run.spec or {}
    plugin = _plugin(run)
    path = _checkpoint(run, plugin.CHECKPOINT, settings)

    def load() -> Any:
        try:
            return plugin.load_predictor(path, name=plugin.CHECKPOINT)
        except TrainerError as e:  # weights_only-unsafe, or not a checkpoint of this framework
            raise Conflict(f"run {run.id}'s best checkpoint cannot be used: {e}") from None

    predictor = _model(str(path), load)
    result = predictor([image], conf=conf, top_k=5, image_size=spec.get("image_size"))[0]
    return PredictOut(run_id=run.id, task=result["task"], predictions=result["predictions"],
                      png_base64=_png(result["plot"]))


@router.post("/api/runs/{run_id}/predict", response_model=PredictOut, summary="Predict on one image",
             responses={404: {"model": ErrorOut}, 409: {"model": ErrorOut, "description": "No checkpoint yet, or "
                                                        "one vtp does not load (not weights_only-safe)."},
                        422: {"model": ErrorOut, "description": "The upload is not an image."}})
async def predict_image(run_id: str, session: SessionDep, settings: SettingsDep,
                        file: Annotated[UploadFile, File(description="An image")],
                        conf: Annotated[float, Query(ge=0.0, le=1.0, allow_inf_nan=False,
                                                     description="Confidence threshold (0–1) for boxes, masks and "
                                                                 "keypoints: objects below it are left out. "
                                                                 "Classification ignores it (top-5).")] = 0.25,
                        ) -> PredictOut:
    """Boxes, masks or keypoints (YOLO), boxes (Hugging Face detectors) or the top-5 classes, with
    an image of them drawn, by the run's framework plugin. The run's published checkpoint (a file or
    a folder, as the plugin names it) is fetched from storage once and the loaded model kept in a
    small LRU."""
    run = crud.get_run(session, run_id=run_id)
    data = await file.read(MAX_IMAGE_BYTES + 1)
    if len(data) > MAX_IMAGE_BYTES:
        raise Unprocessable(f"the image is over {MAX_IMAGE_BYTES // 1024**2} MiB")
    return await run_in_threadpool(_predict, run, data, file.filename or "", settings, conf)


def _read_logs(flow_run_id: str, tail: int, settings: Settings) -> list[LogLine]:
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
    from prefect.client.schemas.sorting import LogSort

    from core.prefect_api import prefect_client

    with prefect_client(settings) as client:
        logs = client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])),
                                limit=tail, sort=LogSort.TIMESTAMP_DESC)
    return [LogLine(timestamp=lg.timestamp.isoformat(), level=logging.getLevelName(lg.level), message=lg.message)
            for lg in reversed(logs)]


@router.get("/api/runs/{run_id}/logs", response_model=LogsOut, summary="The tail of the run's Prefect logs",
            responses={404: {"model": ErrorOut}})
def run_logs(run_id: str, session: SessionDep, settings: SettingsDep,
             tail: Annotated[int, Query(ge=1, le=2000)] = 200) -> LogsOut:
    """Oldest first; empty while the run has no flow run, or when Prefect cannot be reached."""
    run = crud.get_run(session, run_id=run_id)
    lines: list[LogLine] = []
    if run.prefect_flow_run_id:
        try:
            lines = _read_logs(run.prefect_flow_run_id, tail, settings)
        except Exception as e:  # noqa: BLE001 - logs are best effort; Prefect may be down
            log.warning("could not read the logs of run %s from Prefect: %s", run.id, e)
    return LogsOut(run_id=run.id, lines=lines)


@router.get("/api/datasets/{dataset_id}/samples", response_model=SamplesOut, tags=["datasets"],
            summary="A few validation images with their labels drawn", responses={404: {"model": ErrorOut}})
def dataset_samples(dataset_id: DatasetIdPath, session: SessionDep, settings: SettingsDep,
                    n: Annotated[int, Query(ge=1, le=32)] = 8) -> SamplesOut:
    """Small PNG thumbnails: YOLO boxes and polygons drawn, or the class name for ImageFolder.
    The dataset is fetched through the run cache ($VTP_HOME/cache), so a second look is free."""
    from api.dataset_preview import thumbnails

    row = crud.get_dataset(session, dataset_id=dataset_id)
    items = thumbnails(row.name, settings=settings, n=n, classes=list(row.classes or []), task=row.task)
    return SamplesOut(dataset_id=row.id, items=[SampleImage(path=p, caption=c, png_base64=_png(im)) for p, c, im in items])


@router.post("/api/datasets/sample", status_code=201, response_model=DatasetOut, tags=["datasets"],
             summary="Generate and register a small sample dataset",
             responses={409: {"model": ErrorOut, "description": "The name is taken."}})
def create_sample(body: SampleCreate, session: SessionDep, settings: SettingsDep) -> DatasetOut:
    from tasks.dataset_ingest import ingest_sample
    from tasks.samples import SAMPLES
    from tasks.storage import Storage

    if body.name not in SAMPLES:
        raise Unprocessable(f"name={body.name!r} is not a sample dataset: use one of {', '.join(SAMPLES)}")
    storage = Storage(settings=settings)
    datasets_service.check_new_name(session, name=body.name, storage=storage)
    ingest_sample(body.name, storage=storage)
    datasets_service.sync_registry(session, settings=settings)
    row = crud.get_dataset_by_name(session, name=body.name)
    return DatasetOut.model_validate(row)
