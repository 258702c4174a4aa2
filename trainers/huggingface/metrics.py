"""Detection evaluation of the Hugging Face trainer: COCO-style mAP (101-point interpolation, IoU
0.50:0.95). The DETR-family losses match queries to objects with scipy's Hungarian assignment
(``scipy.optimize.linear_sum_assignment``, imported by transformers itself; scipy is a dependency)."""

from __future__ import annotations

import numpy as np

from trainers.common.report import box_iou

IOU_THRESHOLDS = np.linspace(0.5, 0.95, 10)


def _ap(tp: np.ndarray, scores: np.ndarray, n_gt: int) -> float:
    if n_gt == 0:
        return float("nan")
    if len(tp) == 0:
        return 0.0
    order = np.argsort(-scores, kind="stable")
    tp = tp[order]
    ctp, cfp = np.cumsum(tp), np.cumsum(1 - tp)
    recall = ctp / n_gt
    precision = ctp / np.maximum(ctp + cfp, 1e-12)
    precision = np.maximum.accumulate(precision[::-1])[::-1]  # the precision envelope
    points = np.linspace(0, 1, 101)
    idx = np.searchsorted(recall, points, side="left")
    return float(np.mean([precision[i] if i < len(precision) else 0.0 for i in idx]))


def mean_average_precision(preds: list[dict[str, np.ndarray]], gts: list[dict[str, np.ndarray]],
                           num_classes: int) -> dict[str, object]:
    """``preds``: per image {boxes xyxy, scores, labels}; ``gts``: per image {boxes, labels}.

    Returns mAP50, mAP50-95 and per-class AP50 / AP50-95 (NaN for classes without ground truth)."""
    ap = np.full((num_classes, len(IOU_THRESHOLDS)), np.nan)
    for c in range(num_classes):
        n_gt = sum(int((g["labels"] == c).sum()) for g in gts)
        for t_i, thr in enumerate(IOU_THRESHOLDS):
            tps, scores = [], []
            for p, g in zip(preds, gts, strict=True):
                pm, gm = p["labels"] == c, g["labels"] == c
                pb, ps, gb = p["boxes"][pm], p["scores"][pm], g["boxes"][gm]
                order = np.argsort(-ps, kind="stable")
                iou = box_iou(pb[order], gb)
                taken = np.zeros(len(gb), bool)
                for row in iou:
                    cand = np.where(~taken & (row >= thr), row, -1)
                    j = int(cand.argmax()) if len(cand) else -1
                    hit = j >= 0 and cand[j] >= 0
                    if hit:
                        taken[j] = True
                    tps.append(1.0 if hit else 0.0)
                scores.extend(ps[order].tolist())
            ap[c, t_i] = _ap(np.array(tps), np.array(scores), n_gt)
    valid = ~np.isnan(ap[:, 0])
    return {
        "mAP50": float(ap[valid, 0].mean()) if valid.any() else 0.0,
        "mAP50-95": float(ap[valid].mean()) if valid.any() else 0.0,
        "per_class_ap50": ap[:, 0].tolist(),
        "per_class_ap50_95": np.nanmean(np.where(valid[:, None], ap, 0), axis=1).tolist(),
    }
