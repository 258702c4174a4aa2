"""The per-class table of an ultralytics run's evaluation report.

ultralytics draws the rest of the report itself into the run folder (``confusion_matrix.png``, the
``*PR_curve.png`` curves of detect/segment/pose/obb, ``val_batch*_pred.jpg`` prediction grids);
this adds ``per_class.json`` in the shape every vtp trainer writes (see :mod:`trainers.common.report`), from
the trainer's last validation, which is best.pt's final one. The flow turns it into a Prefect table.
"""

from __future__ import annotations

import json
import numbers
from pathlib import Path
from typing import Any

from core.contracts import PER_CLASS
from trainers.common import write_text_atomic
from trainers.common.report import classification_rows

_RENAMED = {"Class": "class", "Images": "images", "Instances": "instances"}


def _plain(value: Any) -> Any:
    if isinstance(value, str) or value is None:
        return value
    if isinstance(value, numbers.Integral):  # numpy integers too
        return int(value)
    return round(float(value), 4)


def per_class_rows(validator: Any, task: str) -> list[dict[str, Any]]:
    """One row per class: accuracy/precision/recall for classify, ultralytics' per-class P/R/mAP otherwise.

    Classes without a single validation instance get a row too (counts 0, metrics None)."""
    names = {int(k): str(v) for k, v in validator.confusion_matrix.names.items()}
    classes = [names[i] for i in sorted(names)]
    if task == "classify":
        matrix = validator.confusion_matrix.matrix  # [predicted][true]
        y_true: list[int] = []
        y_pred: list[int] = []
        for p, row in enumerate(matrix):
            for t, count in enumerate(row):
                y_true += [t] * int(count)
                y_pred += [p] * int(count)
        return classification_rows(y_true, y_pred, classes)
    rows = [{_RENAMED.get(k, k): _plain(v) for k, v in row.items()} for row in validator.metrics.summary()]
    keys = list(rows[0]) if rows else ["class", "images", "instances"]
    seen = {row["class"] for row in rows}
    rows += [{k: (name if k == "class" else 0 if k in ("images", "instances") else None) for k in keys}
             for name in classes if name not in seen]
    order = {name: i for i, name in enumerate(classes)}
    return sorted(rows, key=lambda row: order.get(row["class"], len(order)))


def write_per_class(trainer: Any, task: str, run_dir: Path) -> Path | None:
    """``run_dir/per_class.json`` from the trainer's validator; None when nothing was validated."""
    validator = getattr(trainer, "validator", None)
    if validator is None or getattr(validator, "confusion_matrix", None) is None:
        return None
    return write_text_atomic(run_dir / PER_CLASS, json.dumps({"task": task, "rows": per_class_rows(validator, task)},
                                                             indent=2))
