"""Hugging Face transformers trainer plugin: image classification and object detection.

``train(spec, ctx)`` fine-tunes ``AutoModelForImageClassification`` / ``AutoModelForObjectDetection``
(ViT, ResNet, ConvNeXt, DETR, Conditional DETR, RT-DETR, ... by hub id or local folder) with the
model's own image processor, on transformers' ``Trainer`` (:mod:`trainers.huggingface.session`:
mixed precision on CUDA, gradient accumulation, and DDP in several processes when ``spec.devices``
names several devices, through :mod:`trainers.common.distributed`). Outputs go to ``ctx.workdir/train``: ``weights/best/`` and
``weights/last/`` (``save_pretrained`` folders: model, image processor, ``vtp.json``), ``results.csv``
and the evaluation report. :func:`load_checkpoint` and :func:`predict` read a folder back.

The entry points every plugin has: :func:`train`, :data:`CHECKPOINT` (what a run publishes: the
``best/`` folder), :func:`load_predictor` / :func:`predict_images` (records of
:mod:`trainers.common.predict`), :func:`load_for_export` and :func:`export_model`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.contracts import TrainContext, TrainResult
from core.errors import TrainerError, gpu_out_of_memory
from trainers.common import seed_everything

if TYPE_CHECKING:
    from core.spec import TrainSpec
    from trainers.common.predict import ImagePrediction

__all__ = ["CHECKPOINT", "train", "load_checkpoint", "predict", "load_predictor", "predict_images",
           "load_for_export", "export_model", "check_export"]

CHECKPOINT = "checkpoints/best"  # the run's published checkpoint: weights/best/, a save_pretrained folder


def train(spec: TrainSpec, ctx: TrainContext) -> TrainResult:
    """Train ``spec.model`` on ``ctx.dataset``; see the module doc."""
    import torch

    from trainers.huggingface.session import Session

    if spec.task not in ("classify", "detect"):
        raise TrainerError(f"the huggingface trainer does classify and detect, not {spec.task}: use a YOLO model")
    from trainers.common import distributed

    if distributed.wanted(spec):  # several devices: one process each, this one relays their callbacks
        return distributed.launch(__name__, spec, ctx)
    seed_everything(spec.seed)
    session = Session(spec, ctx)
    try:
        return session.run()
    except torch.cuda.OutOfMemoryError as e:
        raise gpu_out_of_memory(spec) from e
    finally:
        session.close()  # no data-loader worker outlives training (see trainers.loader_workers)


def load_checkpoint(folder: Path | str, device: str = "cpu", name: str | None = None) -> tuple[Any, Any, dict[str, Any]]:
    """(model in eval mode, image processor, vtp.json info) from a ``save_pretrained`` folder.
    TrainerError (calling the folder ``name``, default its path) when it is not a vtp checkpoint
    folder or transformers cannot load it."""
    from transformers import AutoImageProcessor, AutoModelForImageClassification, AutoModelForObjectDetection

    folder = Path(folder)
    name = name or str(folder)
    info_file = folder / "vtp.json"
    if not info_file.is_file():
        raise TrainerError(f"{name} is not a vtp huggingface checkpoint folder: it lacks vtp.json")
    try:
        info = json.loads(info_file.read_text())
        auto = AutoModelForObjectDetection if info["task"] == "detect" else AutoModelForImageClassification
        model = auto.from_pretrained(str(folder), local_files_only=True).eval().to(device)
        processor = AutoImageProcessor.from_pretrained(str(folder), local_files_only=True)
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise TrainerError(f"{name} does not load as a huggingface checkpoint ({e})") from e
    return model, processor, info


def _run(model: Any, processor: Any, info: dict[str, Any], pil: list[Any], top_k: int, threshold: float,
         device: str) -> list[Any]:
    import torch

    inputs = processor(images=pil, return_tensors="pt").to(device)
    classes = info["classes"]
    with torch.no_grad():
        out = model(pixel_values=inputs["pixel_values"])
    if info["task"] == "detect":
        sizes = [(im.height, im.width) for im in pil]
        post = processor.post_process_object_detection(out, threshold=threshold, target_sizes=sizes)
        return [[(classes[int(lab)], float(s), [float(v) for v in b])
                 for s, lab, b in zip(r["scores"], r["labels"], r["boxes"], strict=True)] for r in post]
    probs = out.logits.float().softmax(dim=1)
    values, indices = probs.topk(min(top_k, len(classes)), dim=1)
    return [[(classes[i], float(v)) for v, i in zip(rv.tolist(), ri.tolist(), strict=True)]
            for rv, ri in zip(values, indices, strict=True)]


def predict(folder: Path | str, images: list[Any], top_k: int = 5, threshold: float = 0.3,
            device: str = "cpu") -> list[Any]:
    """Classify: top-k (class, probability) per image. Detect: [(class, score, [x1, y1, x2, y2])] per image."""
    from trainers.common.predict import open_rgb

    model, processor, info = load_checkpoint(folder, device)
    scale = info.get("pixel_scale")
    return _run(model, processor, info, [open_rgb(im, scale) for im in images], top_k, threshold, device)


def load_predictor(folder: Path | str, *, name: str | None = None, device: str = "cpu") -> Any:
    """A predictor for the checkpoint folder (see :mod:`trainers.common.predict`): called with images
    (PIL images or file paths), ``top_k`` (classify, default 5) and ``conf`` (detect: the lowest
    score kept, default 0.25), it returns one record per image. TrainerError as :func:`load_checkpoint`."""
    from trainers.common.predict import classification, detection, open_rgb

    model, processor, info = load_checkpoint(folder, device, name)

    def predictor(images: list[Any], top_k: int = 5, conf: float = 0.25, **_: Any) -> list[ImagePrediction]:
        pil = [open_rgb(im, info.get("pixel_scale")) for im in images]
        found = _run(model, processor, info, pil, top_k, conf, device)
        if info["task"] == "detect":
            return [detection(im, objects) for im, objects in zip(pil, found, strict=True)]
        return [classification(im, top) for im, top in zip(pil, found, strict=True)]

    return predictor


def predict_images(checkpoint: Path | str, images: list[Any], **options: Any) -> list[ImagePrediction]:
    """One record per image (see :func:`load_predictor` for the options)."""
    return load_predictor(checkpoint)(images, **options)


def load_for_export(checkpoint: Path | str) -> tuple[Any, bool]:
    """(the folder's model as a plain torch module in eval mode, whether it is a detector)."""
    from trainers.common.export import plain_module

    model, _, info = load_checkpoint(checkpoint)
    model.config.return_dict = True
    detect = info["task"] == "detect"
    return plain_module(model, detect), detect


def export_model(checkpoint: Path | str, fmt: str, image_size: int, out: Path, **options: Any) -> Path:
    """Write the folder's model as ``fmt`` (onnx, torchscript, openvino) for ``image_size``-pixel
    images to ``out`` (see :func:`trainers.common.export.export_module`)."""
    from trainers.common.export import check_format, export_module

    check_format(fmt)
    module, detect = load_for_export(checkpoint)
    return export_module(module, detect, fmt, image_size, Path(out), **options)


def check_export(checkpoint: Path | str, exported: Path, fmt: str, data: Path, image_size: int,
                 limit: int = 64, **_: Any) -> dict[str, Any]:
    """The export at ``exported`` against the checkpoint folder on up to ``limit`` validation images
    (an ImageFolder ``data`` for classification: {metric "metrics/accuracy_top1", value, reference,
    drop, max_abs_diff, agreement, latency_ms_p50}; a YOLO dataset's val images for detection:
    max_abs_diff over logits and boxes and latency, no metric re-measured)."""
    from trainers.common.export import (
        compare_classifier,
        compare_outputs,
        load_runtime,
        plain_module,
        val_samples,
    )
    from trainers.common.predict import open_rgb

    model, processor, info = load_checkpoint(checkpoint)
    model.config.return_dict = True
    detect = info["task"] == "detect"
    if detect:  # ``data`` is the prepared dataset's data.yaml
        from trainers.huggingface.data import yolo_splits

        samples = [(p, -1) for p in yolo_splits(Path(data).parent, Path(data))[1]["val"][:limit]]
    else:
        samples = val_samples(Path(data), info["classes"], limit)
    if not samples:
        raise TrainerError(f"no validation images under {data} to check the export with")
    pil = [open_rgb(p, info.get("pixel_scale")) for p, _ in samples]
    images = processor(images=pil, return_tensors="pt")["pixel_values"]
    run = load_runtime(exported, fmt)
    module = plain_module(model, detect)
    if detect:
        return {"metric": None, "images": len(samples), **compare_outputs(module, run, images)}
    found = compare_classifier(module, run, images, [i for _, i in samples])
    return {"metric": "metrics/accuracy_top1", "images": len(samples), **found}
