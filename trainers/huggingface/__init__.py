"""Hugging Face transformers trainer plugin: image classification and object detection.

``train(spec, ctx)`` fine-tunes ``AutoModelForImageClassification`` / ``AutoModelForObjectDetection``
(ViT, ResNet, ConvNeXt, DETR, Conditional DETR, RT-DETR, ... by hub id or local folder) with the
model's own image processor. Outputs go to ``ctx.workdir/train``: ``weights/best/`` and
``weights/last/`` (``save_pretrained`` folders: model, image processor, ``vtp.json``), ``results.csv``
and the evaluation report. :func:`load_checkpoint` and :func:`predict` read a folder back.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.contracts import TrainContext, TrainResult
from core.errors import TrainerError, gpu_out_of_memory

if TYPE_CHECKING:
    from core.spec import TrainSpec

__all__ = ["train", "load_checkpoint", "predict"]


def train(spec: TrainSpec, ctx: TrainContext) -> TrainResult:
    """Train ``spec.model`` on ``ctx.dataset``; see the module doc."""
    import numpy as np
    import torch

    from trainers.huggingface.session import Session

    if spec.task not in ("classify", "detect"):
        raise TrainerError(f"the huggingface trainer does classify and detect, not {spec.task}: use a YOLO model")
    random.seed(spec.seed)
    np.random.seed(spec.seed)
    torch.manual_seed(spec.seed)
    session = Session(spec, ctx)
    try:
        return session.run()
    except torch.cuda.OutOfMemoryError as e:
        raise gpu_out_of_memory(spec) from e
    finally:
        session.close()  # no data-loader worker outlives training (see trainers.loader_workers)


def load_checkpoint(folder: Path | str, device: str = "cpu") -> tuple[Any, Any, dict[str, Any]]:
    """(model in eval mode, image processor, vtp.json info) from a ``save_pretrained`` folder."""
    from transformers import AutoImageProcessor, AutoModelForImageClassification, AutoModelForObjectDetection

    folder = Path(folder)
    info_file = folder / "vtp.json"
    if not info_file.is_file():
        raise TrainerError(f"{folder} is not a vtp huggingface checkpoint folder: it lacks vtp.json")
    info = json.loads(info_file.read_text())
    auto = AutoModelForObjectDetection if info["task"] == "detect" else AutoModelForImageClassification
    model = auto.from_pretrained(str(folder), local_files_only=True).eval().to(device)
    processor = AutoImageProcessor.from_pretrained(str(folder), local_files_only=True)
    return model, processor, info


def predict(folder: Path | str, images: list[Any], top_k: int = 5, threshold: float = 0.3,
            device: str = "cpu") -> list[Any]:
    """Classify: top-k (class, probability) per image. Detect: [(class, score, [x1, y1, x2, y2])] per image."""
    import torch
    from PIL import Image

    model, processor, info = load_checkpoint(folder, device)
    pil = [(Image.open(im) if isinstance(im, str | Path) else im).convert("RGB") for im in images]
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
