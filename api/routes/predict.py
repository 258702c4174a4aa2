"""Routes the web UI needs beyond the core API: predictions with a trained checkpoint, a run's
Prefect logs, sample images of a dataset with their labels drawn, and generated sample datasets."""

from __future__ import annotations

import base64
import io
import logging
from collections import OrderedDict
from pathlib import Path
from threading import Lock
from typing import Annotated, Any

from fastapi import APIRouter, File, Query, UploadFile
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from api import artifacts, crud, datasets_service
from api.deps import DatasetIdPath, SessionDep, SettingsDep
from api.errors import Conflict, Unprocessable
from api.schemas import ApiIn, DatasetOut, ErrorOut
from core.settings import Settings

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


def _checkpoint(run: Any, settings: Settings) -> Path:
    storage, artifact = artifacts.find(run, "checkpoints/best.pt", settings=settings)
    dest = settings.cache_root / "predict" / run.id / f"{artifact.sha256[:16]}.pt"
    if not dest.exists():
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_suffix(".part")
        with open(tmp, "wb") as f:
            for chunk in artifacts.stream(storage, run, artifact):
                f.write(chunk)
        tmp.replace(dest)
    return dest


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
    from PIL import Image, ImageDraw

    try:
        image = Image.open(io.BytesIO(data))
        image.load()
        image = image.convert("RGB")
    except Exception as e:  # noqa: BLE001 - any decoding failure means the upload is not an image
        raise Unprocessable(f"{filename or 'the upload'} is not an image PIL can read ({type(e).__name__}): "
                            "send a .jpg, .png, .bmp or .webp file") from None
    spec = run.spec or {}
    path = _checkpoint(run, settings)
    task = spec.get("task") or "detect"
    if spec.get("framework") == "timm":
        from trainers.timm.checkpoint import predict

        top = predict(path, [image], top_k=5)[0]
        preds = [{"class": c, "confidence": p} for c, p in top]
        drawn = image.copy()
        draw = ImageDraw.Draw(drawn)
        for i, p in enumerate(preds[:3]):
            draw.text((4, 4 + 12 * i), f"{p['class']} {p['confidence']:.2f}", fill=(255, 255, 0))
        return PredictOut(run_id=run.id, task="classify", predictions=preds, png_base64=_png(drawn))
    from trainers.ultralytics.checkpoint import UnsafeCheckpoint, check_checkpoint
    from trainers.ultralytics.env import import_ultralytics

    def load() -> Any:
        try:
            check_checkpoint(path, name="checkpoints/best.pt")  # weights_only, like every ultralytics load in vtp
        except UnsafeCheckpoint as e:
            raise Conflict(f"run {run.id}'s best checkpoint cannot be used: {e}") from None
        return import_ultralytics().YOLO(str(path))

    model = _model(str(path), load)
    result = model.predict(image, imgsz=int(spec.get("image_size") or 640), device="cpu", conf=conf,
                           verbose=False)[0]
    names = result.names
    if result.probs is not None:
        preds = [{"class": names[int(i)], "confidence": float(result.probs.data[int(i)])} for i in result.probs.top5]
    else:
        boxes = result.boxes if result.boxes is not None else result.obb
        preds = []
        if boxes is not None:
            xyxy = boxes.xyxy.tolist() if hasattr(boxes, "xyxy") else [[] for _ in boxes.cls]
            preds = [{"class": names[int(c)], "confidence": float(conf), "box": b}
                     for c, conf, b in zip(boxes.cls.tolist(), boxes.conf.tolist(), xyxy, strict=True)]
    drawn = Image.fromarray(result.plot()[..., ::-1])
    return PredictOut(run_id=run.id, task=task, predictions=preds, png_base64=_png(drawn))


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
    """Boxes, masks or keypoints (YOLO) or the top-5 classes, with an image of them drawn. The
    run's best checkpoint is fetched from storage once and the loaded model kept in a small LRU."""
    run = crud.get_run(session, run_id=run_id)
    data = await file.read(MAX_IMAGE_BYTES + 1)
    if len(data) > MAX_IMAGE_BYTES:
        raise Unprocessable(f"the image is over {MAX_IMAGE_BYTES // 1024**2} MiB")
    return await run_in_threadpool(_predict, run, data, file.filename or "", settings, conf)


def _read_logs(flow_run_id: str, tail: int, settings: Settings) -> list[LogLine]:
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
    from prefect.client.schemas.sorting import LogSort

    from core.prefect_setup import prefect_client

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
