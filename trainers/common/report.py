"""Evaluation reports every trainer with a loop of its own writes into its run folder: per-class
metrics (``per_class.json``), confusion matrix, PR curve, a grid of validation predictions, and
``results.csv``. The flow uploads them as artifacts and turns ``per_class.json`` into a Prefect
table (:func:`tasks.report.publish_prefect_tables`). Plots use matplotlib's Figure (no pyplot, no GUI
backend); without matplotlib the JSON/CSV files are still written."""

from __future__ import annotations

import csv
import io
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from core.contracts import PER_CLASS
from trainers.common import write_text_atomic

log = logging.getLogger("vtp.report")
GRID = 16


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of xyxy boxes (pixels or any one unit): (N, 4) x (M, 4) -> (N, M)."""
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)))
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(rb - lt, 0, None).prod(-1)
    area_a = (a[:, 2:] - a[:, :2]).clip(0).prod(-1)
    area_b = (b[:, 2:] - b[:, :2]).clip(0).prod(-1)
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-12)


def write_results_csv(path: Path, history: list[dict[str, float]]) -> None:
    """One row per epoch ("epoch", then the first row's metric names; floats to 6 significant
    digits), the whole file rewritten atomically each epoch so it is always complete. Nothing is
    written for an empty history."""
    if not history:
        return
    keys = ["epoch"] + [k for k in history[0] if k != "epoch"]
    out = io.StringIO(newline="")
    writer = csv.DictWriter(out, fieldnames=keys, extrasaction="ignore")
    writer.writeheader()
    for row in history:
        writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})
    write_text_atomic(path, out.getvalue())


def _figure(**kw: Any) -> Any:
    try:
        from matplotlib.figure import Figure
    except ImportError:
        log.info("matplotlib is not installed; skipping plots")
        return None
    from core.fonts import use_cjk_font

    use_cjk_font()  # Korean class names: an installed CJK font as fallback (once per process)
    return Figure(**kw)


def confusion(y_true: list[int], y_pred: list[int], n: int) -> list[list[int]]:
    m = [[0] * n for _ in range(n)]
    for t, p in zip(y_true, y_pred, strict=True):
        m[t][p] += 1
    return m


def classification_rows(y_true: list[int], y_pred: list[int], classes: list[str]) -> list[dict[str, Any]]:
    m = confusion(y_true, y_pred, len(classes))
    rows = []
    for i, name in enumerate(classes):
        support, tp = sum(m[i]), m[i][i]
        predicted = sum(m[r][i] for r in range(len(classes)))
        precision = tp / predicted if predicted else 0.0
        recall = tp / support if support else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        rows.append({"class": name, "support": support, "accuracy": round(recall, 4),
                     "precision": round(precision, 4), "recall": round(recall, 4), "f1": round(f1, 4)})
    return rows


def plot_confusion(path: Path, matrix: list[list[int]], classes: list[str]) -> Path | None:
    fig = _figure(figsize=(1.2 + 0.6 * len(classes), 1 + 0.55 * len(classes)), tight_layout=True)
    if fig is None:
        return None
    ax = fig.subplots()
    ax.imshow(matrix, cmap="Blues")
    ax.set(xticks=range(len(classes)), yticks=range(len(classes)), xlabel="predicted", ylabel="true",
           title="confusion matrix")
    ax.set_xticklabels(classes, rotation=45, ha="right")
    ax.set_yticklabels(classes)
    for i, row in enumerate(matrix):
        for j, v in enumerate(row):
            ax.text(j, i, str(v), ha="center", va="center", fontsize=8)
    fig.savefig(path, dpi=100)
    return path


def plot_pr_curve(path: Path, preds: list[dict[str, Any]], gts: list[dict[str, Any]], classes: list[str]) -> Path | None:
    """Precision-recall per class at IoU 0.5."""
    fig = _figure(figsize=(5, 4), tight_layout=True)
    if fig is None:
        return None
    ax = fig.subplots()
    for c, name in enumerate(classes):
        n_gt = sum(int((g["labels"] == c).sum()) for g in gts)
        scored: list[tuple[float, float]] = []
        for p, g in zip(preds, gts, strict=True):
            pm, gm = p["labels"] == c, g["labels"] == c
            order = np.argsort(-p["scores"][pm])
            iou, taken = box_iou(p["boxes"][pm][order], g["boxes"][gm]), set()
            for k, row in enumerate(iou):
                j = next((int(j) for j in np.argsort(-row) if row[j] >= 0.5 and int(j) not in taken), None)
                if j is not None:
                    taken.add(j)
                scored.append((float(p["scores"][pm][order][k]), 1.0 if j is not None else 0.0))
        if not n_gt or not scored:
            continue
        scored.sort(key=lambda s: -s[0])
        tp = np.cumsum([s[1] for s in scored])
        ax.plot(tp / n_gt, tp / np.arange(1, len(tp) + 1), label=name)
    ax.set(xlabel="recall", ylabel="precision", xlim=(0, 1), ylim=(0, 1.02), title="PR curve (IoU 0.5)")
    ax.legend(fontsize=7)
    fig.savefig(path, dpi=100)
    return path


def prediction_grid(path: Path, images: list[str], captions: list[str],
                    boxes: list[list[tuple[list[float], str]]] | None = None) -> Path | None:
    """Up to 16 validation images with their predictions (caption, and boxes for detection)."""
    from trainers.common.images import load_rgb

    n = min(GRID, len(images))
    cols = min(4, n)
    fig = _figure(figsize=(3 * cols, 3 * ((n + cols - 1) // cols)), tight_layout=True)
    if fig is None or n == 0:
        return None
    axes = fig.subplots((n + cols - 1) // cols, cols, squeeze=False).ravel()
    for k, ax in enumerate(axes):
        ax.axis("off")
        if k >= n:
            continue
        ax.imshow(load_rgb(images[k]))  # 16-bit images by their container's range, not clipped to white
        ax.set_title(captions[k], fontsize=8)
        for (x1, y1, x2, y2), label in (boxes[k] if boxes else []):
            ax.add_patch(_rect(x1, y1, x2 - x1, y2 - y1))
            ax.text(x1, y1, label, fontsize=6, color="white", backgroundcolor="red")
    fig.savefig(path, dpi=80)
    return path


def _rect(x: float, y: float, w: float, h: float) -> Any:
    from matplotlib.patches import Rectangle

    return Rectangle((x, y), w, h, fill=False, edgecolor="red", linewidth=1.5)


def evaluation_report(run_dir: Path, task: str, classes: list[str], data: dict[str, Any],
                      history: list[dict[str, float]]) -> list[Path]:
    """Write the report of the best epoch's evaluation into ``run_dir``; returns the files."""
    out: list[Path | None] = []
    if task == "detect":
        m = data["map"]
        rows = [{"class": c, "instances": int(sum(int((g["labels"] == i).sum()) for g in data["gts"])),
                 "AP50": round(float(m["per_class_ap50"][i]), 4) if m["per_class_ap50"][i] == m["per_class_ap50"][i] else None,
                 "AP50-95": round(float(m["per_class_ap50_95"][i]), 4)} for i, c in enumerate(classes)]
        out.append(plot_pr_curve(run_dir / "PR_curve.png", data["preds"], data["gts"], classes))
        keep = [[(list(map(float, b)), f"{classes[int(lab)]} {s:.2f}")
                 for b, s, lab in zip(p["boxes"], p["scores"], p["labels"], strict=True) if s >= 0.3][:10]
                for p in data["preds"]]
        out.append(prediction_grid(run_dir / "val_pred_grid.jpg", data["images"],
                                   [Path(i).name for i in data["images"]], keep))
    else:
        rows = classification_rows(data["y_true"], data["y_pred"], classes)
        matrix = confusion(data["y_true"], data["y_pred"], len(classes))
        out.append(plot_confusion(run_dir / "confusion_matrix.png", matrix, classes))
        captions = [f"{classes[p]} (true {classes[t]})" for t, p in zip(data["y_true"], data["y_pred"], strict=True)]
        out.append(prediction_grid(run_dir / "val_pred_grid.jpg", data["images"], captions))
    (run_dir / PER_CLASS).write_text(json.dumps({"task": task, "rows": rows}, indent=2))
    out.append(run_dir / PER_CLASS)
    return [p for p in out if p is not None]
