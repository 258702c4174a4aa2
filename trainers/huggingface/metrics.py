"""Evaluation maths without extra packages: COCO-style mAP (101-point interpolation, IoU 0.50:0.95)
and a Hungarian assignment for transformers' DETR losses when scipy is not installed."""

from __future__ import annotations

import numpy as np

IOU_THRESHOLDS = np.linspace(0.5, 0.95, 10)


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of xyxy boxes: (N, 4) x (M, 4) -> (N, M)."""
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)))
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(rb - lt, 0, None).prod(-1)
    area_a = (a[:, 2:] - a[:, :2]).clip(0).prod(-1)
    area_b = (b[:, 2:] - b[:, :2]).clip(0).prod(-1)
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-12)


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


def linear_sum_assignment(cost: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Minimum-cost assignment of a rectangular matrix (scipy's signature and result), by the
    shortest augmenting path method: O(n^2 m) with n = the smaller side (DETR: the targets)."""
    cost = np.asarray(cost, dtype=float)
    transposed = cost.shape[0] > cost.shape[1]
    if transposed:
        cost = cost.T
    n, m = cost.shape
    if n == 0:
        return np.array([], int), np.array([], int)
    u, v = np.zeros(n + 1), np.zeros(m + 1)
    p, way = np.zeros(m + 1, int), np.zeros(m + 1, int)  # p[j]: row matched to column j (1-based)
    for i in range(1, n + 1):
        p[0], j0 = i, 0
        minv, used = np.full(m + 1, np.inf), np.zeros(m + 1, bool)
        while True:
            used[j0] = True
            i0 = p[j0]
            cur = cost[i0 - 1] - u[i0] - v[1:]
            free = ~used[1:]
            better = free & (cur < minv[1:])
            minv[1:][better] = cur[better]
            way[1:][better] = j0
            cand = np.where(free, minv[1:], np.inf)
            j1 = int(cand.argmin()) + 1
            delta = cand[j1 - 1]
            u[p[used]] += delta
            v[used] -= delta
            minv[1:][free] -= delta
            j0 = j1
            if p[j0] == 0:
                break
        while j0:
            j1 = way[j0]
            p[j0] = p[j1]
            j0 = j1
    rows = np.array([p[j] - 1 for j in range(1, m + 1) if p[j]], int)
    cols = np.array([j - 1 for j in range(1, m + 1) if p[j]], int)
    order = np.argsort(rows)
    rows, cols = rows[order], cols[order]
    if transposed:
        rows, cols = cols, rows
        order = np.argsort(rows)
        rows, cols = rows[order], cols[order]
    return rows, cols


def install_matcher_fallback() -> bool:
    """Let transformers' DETR-family losses run without scipy; True when the fallback was installed."""
    try:
        import scipy.optimize  # noqa: F401
        return False
    except ImportError:
        pass
    import importlib

    def requires_backends(obj: object, backends: list[str] | str) -> None:
        wanted = [backends] if isinstance(backends, str) else list(backends)
        rest = [b for b in wanted if b != "scipy"]
        if rest:
            from transformers.utils import requires_backends as original

            original(obj, rest)

    for name in ("loss_for_object_detection", "loss_deformable_detr", "loss_rt_detr", "loss_grounding_dino"):
        try:
            module = importlib.import_module(f"transformers.loss.{name}")
        except ImportError:
            continue
        module.linear_sum_assignment = linear_sum_assignment
        if hasattr(module, "requires_backends"):
            module.requires_backends = requires_backends
    return True
