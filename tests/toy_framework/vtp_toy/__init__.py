"""A trainer plugin that lives outside vtp: vtp finds it only through its ``vtp.trainers`` entry point.

``train(spec, ctx)`` fits a linear classifier (``torch.nn.Linear``) to the pixels of the ImageFolder
dataset at ``ctx.dataset.root``, each image downscaled to ``spec.image_size`` x ``spec.image_size``
RGB and scaled to [0, 1]. Adam at ``spec.learning_rate`` (default 1e-2), ``spec.batch_size``
images a step, ``spec.epochs`` epochs; it reports through ``ctx.callbacks`` as every vtp trainer
does and writes ``weights/best.pt`` (by top-1 accuracy on the validation split) and
``weights/last.pt`` under ``ctx.workdir``: ``{"state_dict", "classes", "image_size", "epoch"}``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from core.contracts import TrainContext, TrainResult
from core.errors import DatasetError

__all__ = ["train"]
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


def _load_split(split_dir: Path, classes: list[str], size: int) -> tuple[np.ndarray, np.ndarray]:
    """(images N x 3*size*size float32 in [0, 1], labels N int64) of one ImageFolder split."""
    xs: list[np.ndarray] = []
    ys: list[int] = []
    for label, name in enumerate(classes):
        folder = split_dir / name
        for path in sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES) if folder.is_dir() else ():
            with Image.open(path) as im:
                pixels = np.asarray(im.convert("RGB").resize((size, size)), dtype=np.float32) / 255.0
            xs.append(pixels.reshape(-1))
            ys.append(label)
    if not xs:
        raise DatasetError(f"no images in {split_dir}")
    return np.stack(xs), np.asarray(ys, dtype=np.int64)


def train(spec: Any, ctx: TrainContext) -> TrainResult:
    """Train the linear classifier; see the module doc. Raises DatasetError without train/val images."""
    import torch

    torch.manual_seed(spec.seed)
    root = ctx.dataset.root
    classes = list(ctx.dataset.classes) or sorted(p.name for p in (root / "train").iterdir() if p.is_dir())
    val_dir = next((root / name for name in ("val", "valid", "validation", "test") if (root / name).is_dir()), None)
    if val_dir is None:
        raise DatasetError(f"{root} has no validation split (val/, valid/, validation/ or test/)")
    size = spec.image_size
    x_train, y_train = (torch.from_numpy(a) for a in _load_split(root / "train", classes, size))
    x_val, y_val = (torch.from_numpy(a) for a in _load_split(val_dir, classes, size))

    model = torch.nn.Linear(x_train.shape[1], len(classes))
    weight_decay = float(spec.overrides.get("weight_decay", 0.0))
    optimizer = torch.optim.Adam(model.parameters(), lr=spec.learning_rate or 1e-2, weight_decay=weight_decay)
    loss_fn = torch.nn.CrossEntropyLoss()
    if ctx.init_from:
        model.load_state_dict(torch.load(ctx.init_from, weights_only=True)["state_dict"])

    weights = ctx.workdir / "weights"
    weights.mkdir(parents=True, exist_ok=True)
    best_acc, metrics, completed, stopped = -1.0, {}, 0, False
    for epoch in range(1, spec.epochs + 1):
        model.train()
        order = torch.randperm(len(x_train))
        losses = []
        for i in range(0, len(order), spec.batch_size):
            batch = order[i:i + spec.batch_size]
            optimizer.zero_grad()
            loss = loss_fn(model(x_train[batch]), y_train[batch])
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
            ctx.callbacks.heartbeat()
        model.eval()
        with torch.no_grad():
            logits = model(x_val)
            val_loss = loss_fn(logits, y_val).item()
            acc = (logits.argmax(1) == y_val).float().mean().item()
        metrics = {"train/loss": float(np.mean(losses)), "val/loss": val_loss, "metrics/accuracy_top1": acc}
        checkpoint = {"state_dict": model.state_dict(), "classes": classes, "image_size": size, "epoch": epoch}
        torch.save(checkpoint, weights / "last.pt")
        if acc > best_acc:
            best_acc = acc
            torch.save(checkpoint, weights / "best.pt")
        completed = epoch
        ctx.callbacks.epoch_end(epoch, spec.epochs, metrics)
        ctx.callbacks.log(f"epoch {epoch}/{spec.epochs}: top-1 {acc:.3f}")
        if ctx.callbacks.should_stop(force=True):
            stopped = True
            break
    return TrainResult(metrics=metrics, best_checkpoint=weights / "best.pt", last_checkpoint=weights / "last.pt",
                       epochs_completed=completed, pretrained_used=False, stopped_early=stopped)
