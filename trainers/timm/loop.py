"""One training epoch and one evaluation pass for timm classifiers, with AMP on CUDA."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader

from core.contracts import Callbacks
from core.errors import TrainerError
from trainers.common import options_from_overrides


@dataclass
class Options:
    """The timm trainer's settings; every field is an override key in capabilities.json."""

    optimizer: str = "adamw"
    weight_decay: float | None = None  # adamw 0.05, otherwise 1e-4
    momentum: float = 0.9
    warmup_epochs: int | None = None  # default: a fifth of the epochs, at most 3
    label_smoothing: float = 0.1
    drop_rate: float | None = None
    drop_path_rate: float | None = None
    hflip: float = 0.5
    color_jitter: float = 0.0
    scale_min: float = 0.08
    amp: bool = True  # CUDA only
    min_lr: float = 1e-6
    grad_clip: float = 0.0  # max gradient norm; 0 = off
    channels_last: bool = True  # CUDA only

    @classmethod
    def from_overrides(cls, overrides: dict[str, Any]) -> Options:
        return options_from_overrides(cls, overrides, "timm")

    def default_lr(self) -> float:
        return 1e-3 if self.optimizer.lower() in ("adamw", "adam", "nadamw", "lamb", "lion") else 1e-2

    def resolved_weight_decay(self) -> float:
        if self.weight_decay is not None:
            return self.weight_decay
        return 0.05 if self.optimizer.lower() in ("adamw", "nadamw", "lamb") else 1e-4

    def resolved_warmup(self, epochs: int) -> int:
        return self.warmup_epochs if self.warmup_epochs is not None else min(3, epochs // 5)


@dataclass
class Runtime:
    """Where and how tensors run: device, autocast dtype (None = fp32), memory format."""

    device: torch.device
    amp_dtype: torch.dtype | None
    channels_last: bool

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def to_device(self, images: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        images = images.to(self.device, non_blocking=True)
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        return images, targets.to(self.device, non_blocking=True)


def make_runtime(device: torch.device, opts: Options) -> Runtime:
    on_cuda = device.type == "cuda"
    amp_dtype = None
    if on_cuda and opts.amp:
        amp_dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return Runtime(device, amp_dtype, on_cuda and opts.channels_last)


def train_one_epoch(
    model: nn.Module,
    loader: DataLoader,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    loss_fn: Callable[..., torch.Tensor],
    scaler: torch.amp.GradScaler,
    rt: Runtime,
    pulse: Callbacks,
    num_updates: int,
    grad_clip: float,
    accumulate: int = 1,
) -> tuple[float, int, bool]:
    """Returns (mean train loss, optimizer steps so far, stop requested). Polls for a stop between batches.

    ``accumulate`` is the number of batches whose gradients are summed before each optimizer step
    (1, the default, steps every batch). Each batch's loss is divided by the number of batches in its
    group, so a step follows the mean of its batches' gradients; the last group of the epoch may be
    shorter (``len(loader)`` not a multiple of ``accumulate``) and is divided by its own size and stepped
    at the end of the epoch. ``num_updates`` and the scheduler count optimizer steps:
    ceil(len(loader) / accumulate) per epoch. ``grad_clip`` (max gradient norm, 0 = off) clips the summed
    gradient just before each step."""
    model.train()
    batches = len(loader)
    total, count, stopped, pending = 0.0, 0, False, False
    for i, (images, targets) in enumerate(loader):
        first = i - i % accumulate  # index of the first batch of this batch's group
        group = min(accumulate, batches - first)  # batches in the group: the epoch's last may be shorter
        images, targets = rt.to_device(images, targets)
        with rt.autocast():
            loss = loss_fn(model(images), targets)
        value = loss.item()
        if not math.isfinite(value):
            raise TrainerError(
                f"the training loss became {value} at update {num_updates}: lower learning_rate "
                "(or set overrides.grad_clip, e.g. 1.0)"
            )
        if i == first:
            optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss / group if group > 1 else loss).backward()
        pending = i + 1 < first + group
        if not pending:  # the group is complete: one optimizer step for all its batches
            if grad_clip > 0:
                scaler.unscale_(optimizer)
                nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
            scaler.step(optimizer)
            scaler.update()
            num_updates += 1
            scheduler.step_update(num_updates=num_updates)
        total += value * targets.size(0)
        count += targets.size(0)
        pulse.heartbeat()
        if pulse.should_stop():
            stopped = True
            break
    if stopped and pending:
        # a stop in the middle of a group: its gradients are discarded, not stepped on (a step on part
        # of a group would be a smaller, differently scaled batch than every other step of the run)
        optimizer.zero_grad(set_to_none=True)
    return total / max(count, 1), num_updates, stopped


@torch.no_grad()
def evaluate(
    model: nn.Module, loader: DataLoader, rt: Runtime, num_classes: int, pulse: Callbacks,
    gather: Callable[[Any], Any] | None = None,
) -> dict[str, float]:
    """Validation loss (plain cross-entropy) and top-1 / top-k accuracy, k = min(5, classes).

    ``gather`` (several processes: ``accelerator.gather_for_metrics``) collects every process's
    (logits, targets) of a batch, without the samples a shard repeats, so each process computes the
    metrics of the whole validation split."""
    model.eval()
    k = min(5, num_classes)
    loss_sum, top1, topk, count = 0.0, 0, 0, 0
    for images, targets in loader:
        images, targets = rt.to_device(images, targets)
        with rt.autocast():
            logits = model(images)
        logits = logits.float()
        if gather is not None:
            logits, targets = gather((logits, targets))
        loss_sum += nn.functional.cross_entropy(logits, targets, reduction="sum").item()
        best = logits.topk(k, dim=1).indices
        hits = best == targets[:, None]
        top1 += hits[:, 0].sum().item()
        topk += hits.any(dim=1).sum().item()
        count += targets.size(0)
        pulse.heartbeat()
    if count == 0:
        raise TrainerError("the validation split has no images: add images under val/<class>/")
    return {
        "val/loss": loss_sum / count,
        "metrics/accuracy_top1": top1 / count,
        "metrics/accuracy_top5": topk / count,
    }
