"""timm trainer plugin: image classification with any timm architecture.

``train(spec, ctx)`` runs a plain PyTorch loop (in several processes through ``accelerate`` when
``spec.devices`` names several devices: :mod:`trainers.common.distributed`): timm model and transforms, AdamW (or another timm
optimizer) with a warmed-up cosine schedule, label smoothing, AMP and channels_last on CUDA, top-1 /
top-k validation each epoch, early stopping by ``spec.patience``. Outputs go to ``ctx.workdir/train``:
``weights/best.pt`` (by top-1), ``weights/last.pt``, ``results.csv``, ``results.png``, ``args.yaml``.
``load_checkpoint`` and ``predict`` read a checkpoint back.

The entry points every plugin has: :func:`train`, :data:`CHECKPOINT` (what a run publishes),
:func:`load_predictor` / :func:`predict_images` (records of :mod:`trainers.common.predict`),
:func:`load_for_export` and :func:`export_model`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.contracts import TrainContext, TrainResult
from core.errors import TrainerError, gpu_out_of_memory
from trainers.common import seed_everything
from trainers.timm.checkpoint import load_checkpoint, load_predictor, predict

if TYPE_CHECKING:
    from core.spec import TrainSpec
    from trainers.common.predict import ImagePrediction

__all__ = ["CHECKPOINT", "train", "load_checkpoint", "predict", "load_predictor", "predict_images",
           "load_for_export", "export_model", "check_export"]

CHECKPOINT = "checkpoints/best.pt"  # the run's published checkpoint (weights_dir/best.pt), in its storage folder


def train(spec: TrainSpec, ctx: TrainContext) -> TrainResult:
    """Train ``spec.model`` on the ImageFolder at ``ctx.dataset.root``; see the module doc."""
    import torch

    from trainers.timm.session import Session

    if spec.task not in (None, "classify"):
        raise TrainerError(
            f"timm trains classification only, not {spec.task}: use a YOLO model for {spec.task}"
        )
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


def predict_images(checkpoint: Path | str, images: list[Any], **options: Any) -> list[ImagePrediction]:
    """One classification record per image (PIL images or file paths); ``top_k`` (default 5)."""
    return load_predictor(checkpoint)(images, **options)


def load_for_export(checkpoint: Path | str) -> tuple[Any, bool]:
    """(the checkpoint's model as a plain torch module in eval mode, False: not a detector)."""
    from trainers.common.export import plain_module

    model, _ = load_checkpoint(checkpoint)
    return plain_module(model, False), False


def export_model(checkpoint: Path | str, fmt: str, image_size: int, out: Path, **options: Any) -> Path:
    """Write the checkpoint's model as ``fmt`` (onnx, torchscript, openvino) for ``image_size``-pixel
    images to ``out`` (see :func:`trainers.common.export.export_module`)."""
    from trainers.common.export import check_format, export_module

    check_format(fmt)
    module, detect = load_for_export(checkpoint)
    return export_module(module, detect, fmt, image_size, Path(out), **options)


def check_export(checkpoint: Path | str, exported: Path, fmt: str, data: Path, image_size: int,
                 limit: int = 64, **_: Any) -> dict[str, Any]:
    """The export at ``exported`` against the checkpoint on up to ``limit`` validation images of the
    ImageFolder ``data``: {metric ("metrics/accuracy_top1"), value, reference, drop, max_abs_diff,
    agreement, latency_ms_p50} (:func:`trainers.common.export.compare_classifier`)."""
    import torch

    from trainers.common.export import compare_classifier, load_runtime, plain_module, val_samples
    from trainers.common.predict import open_rgb
    from trainers.timm.data import DataConfig, eval_transform

    model, classes = load_checkpoint(checkpoint)
    config = model.vtp_data_config or {}
    transform = eval_transform(DataConfig.from_dict(config))
    samples = val_samples(Path(data), classes, limit)
    images = torch.stack([transform(open_rgb(p, config.get("pixel_scale"))) for p, _ in samples])
    found = compare_classifier(plain_module(model, False), load_runtime(exported, fmt), images, [i for _, i in samples])
    return {"metric": "metrics/accuracy_top1", "images": len(samples), **found}
