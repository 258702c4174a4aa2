"""Run-folder artifacts of the timm trainer: results.csv, results.png, args.yaml and the evaluation report."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import yaml

from trainers.common import write_text_atomic
from trainers.common.report import evaluation_report, write_results_csv  # noqa: F401 - the session writes it

log = logging.getLogger("vtp.timm")


def write_args(path: Path, spec: dict[str, Any], options: dict[str, Any], extra: dict[str, Any]) -> None:
    """``args.yaml``: the spec, the trainer's options and ``extra`` (device, classes, ...), atomically."""
    write_text_atomic(path, yaml.safe_dump({"spec": spec, "options": options, **extra}, sort_keys=False))


def plot_curves(path: Path, history: list[dict[str, float]]) -> Path | None:
    """Loss and accuracy curves; None when matplotlib is missing (the CSV has the same numbers)."""
    try:
        from matplotlib.figure import Figure  # no pyplot: no global state, no GUI backend
    except ImportError:
        log.info("matplotlib is not installed; skipping %s", path.name)
        return None
    epochs = [row["epoch"] for row in history]
    fig = Figure(figsize=(9, 3.5), tight_layout=True)
    loss_ax, acc_ax = fig.subplots(1, 2)
    for key in ("train/loss", "val/loss"):
        loss_ax.plot(epochs, [row[key] for row in history], marker="o", label=key)
    for key in ("metrics/accuracy_top1", "metrics/accuracy_top5"):
        acc_ax.plot(epochs, [row[key] for row in history], marker="o", label=key.split("/")[-1])
    loss_ax.set(title="loss", xlabel="epoch")
    acc_ax.set(title="accuracy", xlabel="epoch", ylim=(0, 1.02))
    for ax in (loss_ax, acc_ax):
        ax.legend()
        ax.grid(alpha=0.3)
    fig.savefig(path, dpi=100)
    return path


def evaluation(run_dir: Path, model: Any, checkpoint: Path, loader: Any, rt: Any, classes: list[str],
               history: list[dict[str, float]], pulse: Any) -> list[Path]:
    """The evaluation report of ``checkpoint`` (best.pt): per-class metrics, confusion matrix and a
    grid of validation predictions, from one pass over the validation split (a resumed run has no
    earlier epoch's predictions, so they are made again here). Loads the checkpoint into ``model``."""
    import torch

    model.load_state_dict(torch.load(checkpoint, map_location="cpu", weights_only=True)["model"])
    model.eval()
    y_true: list[int] = []
    y_pred: list[int] = []
    with torch.no_grad():
        for images, targets in loader:  # not shuffled: predictions line up with loader.dataset.samples
            images, targets = rt.to_device(images, targets)
            with rt.autocast():
                logits = model(images)
            y_true += targets.tolist()
            y_pred += logits.argmax(dim=1).tolist()
            pulse.heartbeat()
    images = [str(path) for path, _ in loader.dataset.samples]
    return evaluation_report(run_dir, "classify", classes, {"y_true": y_true, "y_pred": y_pred, "images": images},
                             history)
