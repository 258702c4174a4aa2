"""timm trainer plugin: image classification with any timm architecture.

``train(spec, ctx)`` runs a plain PyTorch loop: timm model and transforms, AdamW (or another timm
optimizer) with a warmed-up cosine schedule, label smoothing, AMP and channels_last on CUDA, top-1 /
top-k validation each epoch, early stopping by ``spec.patience``. Outputs go to ``ctx.workdir/train``:
``weights/best.pt`` (by top-1), ``weights/last.pt``, ``results.csv``, ``results.png``, ``args.yaml``.
``load_checkpoint`` and ``predict`` read a checkpoint back.
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

from core.contracts import TrainContext, TrainResult
from core.errors import TrainerError, gpu_out_of_memory
from trainers.timm.checkpoint import load_checkpoint, predict

if TYPE_CHECKING:
    from core.spec import TrainSpec

__all__ = ["train", "load_checkpoint", "predict"]


def train(spec: TrainSpec, ctx: TrainContext) -> TrainResult:
    """Train ``spec.model`` on the ImageFolder at ``ctx.dataset.root``; see the module doc."""
    import torch

    from trainers.timm.session import Session

    if spec.task not in (None, "classify"):
        raise TrainerError(
            f"timm trains classification only, not {spec.task}: use a YOLO model for {spec.task}"
        )
    _seed_everything(spec.seed)
    session = Session(spec, ctx)
    try:
        return session.run()
    except torch.cuda.OutOfMemoryError as e:
        raise gpu_out_of_memory(spec) from e
    finally:
        session.close()  # no data-loader worker outlives training (see trainers.loader_workers)


def _seed_everything(seed: int) -> None:
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # also seeds every CUDA device
