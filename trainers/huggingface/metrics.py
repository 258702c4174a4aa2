"""Detection evaluation of the Hugging Face trainer: COCO mAP computed by pycocotools' ``COCOeval``.

vtp does not compute AP itself. :func:`mean_average_precision` turns the predictions into the COCO
ground-truth and result structures in memory and runs pycocotools' bbox evaluation
(``pycocotools/cocoeval.py``: ``COCOeval.evaluate`` matches each image's detections of a class,
highest score first, to the unmatched ground truth of best IoU at each IoU 0.50:0.05:0.95;
``COCOeval.accumulate`` builds the precision envelope and reads it at 101 recall points). Choices:

- boxes xyxy pixels -> COCO xywh, ``iscrowd`` 0, ``area`` w*h; image, annotation and category ids
  start at 1 (``COCOeval`` stores matches as ids and reads 0 as "unmatched").
- Area range: only ``all``, as ``[0, inf)`` (COCO's ``all`` stops at 1e10 px²); small / medium /
  large are not computed.
- ``maxDets``: COCO keeps the 100 best detections per image and class. DETR has 100 queries and
  Conditional DETR's post-processing keeps its top 100, but RT-DETR returns up to 300 (its
  ``num_queries``), so vtp sets ``maxDets`` to the largest number of predictions of one image when
  that is above 100: no prediction is silently dropped (as in ultralytics, which has no cap after
  its NMS ``max_det``). With at most 100 per image this is exactly COCO's AP@[.5:.95] / AP50.
- Classes without ground truth have no AP (COCO's -1) and are left out of the means.

ultralytics computes its mAP with its own code (``ultralytics/utils/metrics.py``: ``ap_per_class``
and ``compute_ap``; predictions matched per image by ``BaseValidator.match_predictions`` in
``ultralytics/engine/validator.py``): the same IoU thresholds and the same greedy highest-score-first
matching, no ``maxDets`` and no area ranges, but AP integrates the same envelope at the 101 points
with the trapezoid rule (``np.interp`` + ``trapz``) where COCO averages the 101 values. On the same
predictions ultralytics minus COCO lies in [-0.015, +0.005] per class, hence for mAP50 and mAP50-95,
unless scores tie or an IoU is within ~1e-5 of a threshold (ultralytics' IoU is float32):
derived, measured and asserted in ``tests/unit/test_hf_map_reference.py``; see
docs/architecture.md, "Detection metrics".

The DETR-family losses match queries to objects with scipy's Hungarian assignment
(``scipy.optimize.linear_sum_assignment``, imported by transformers itself; scipy is a dependency)."""

from __future__ import annotations

import contextlib
import io
import logging
from collections.abc import Iterator
from typing import Any

import numpy as np

COCO_MAX_DETS = 100  # pycocotools' default cap on detections per image (and class)
log = logging.getLogger("vtp.huggingface.metrics")


def _xywh(boxes: np.ndarray) -> np.ndarray:
    b = np.asarray(boxes, dtype=float).reshape(-1, 4)
    return np.column_stack([b[:, 0], b[:, 1], b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]])


def coco_structures(preds: list[dict[str, np.ndarray]], gts: list[dict[str, np.ndarray]],
                    num_classes: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """(ground-truth dataset, detections dataset) in COCO's format: image ``i`` is id ``i + 1``,
    class ``c`` category id ``c + 1``; every image is listed, with or without ground truth."""
    images = [{"id": i + 1} for i in range(len(gts))]
    categories = [{"id": c + 1} for c in range(num_classes)]

    def annotations(records: list[dict[str, np.ndarray]], scored: bool) -> list[dict[str, Any]]:
        anns: list[dict[str, Any]] = []
        for i, r in enumerate(records):
            labels = np.asarray(r["labels"]).reshape(-1)
            scores = np.asarray(r["scores"], dtype=float).reshape(-1) if scored else None
            for k, (box, label) in enumerate(zip(_xywh(r["boxes"]).tolist(), labels.tolist(), strict=True)):
                ann = {"id": len(anns) + 1, "image_id": i + 1, "category_id": int(label) + 1, "bbox": box,
                       "area": box[2] * box[3], "iscrowd": 0}
                if scores is not None:
                    ann["score"] = float(scores[k])
                anns.append(ann)
        return anns

    gt = {"images": images, "categories": categories, "annotations": annotations(gts, False)}
    dt = {"images": images, "categories": categories, "annotations": annotations(preds, True)}
    return gt, dt


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """pycocotools prints its progress to stdout: capture it, and log it with the error when it fails
    (the exception itself propagates). ``redirect_stdout`` swaps ``sys.stdout`` for the whole
    process for those milliseconds; stderr is untouched."""
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out):
            yield
    except Exception:
        log.error("pycocotools failed; its output:\n%s", out.getvalue())
        raise


def coco_precision(preds: list[dict[str, np.ndarray]], gts: list[dict[str, np.ndarray]],
                   num_classes: int) -> np.ndarray:
    """COCOeval's precision array [IoU threshold, recall point, class] (area ``all``, the one
    ``maxDets``); -1 where a class has no ground truth."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    gt_data, dt_data = coco_structures(preds, gts, num_classes)
    most = max((len(np.asarray(p["scores"]).reshape(-1)) for p in preds), default=0)
    with _quiet():
        gt, dt = COCO(), COCO()
        gt.dataset, dt.dataset = gt_data, dt_data
        gt.createIndex()
        dt.createIndex()
        ev = COCOeval(gt, dt, iouType="bbox")
        ev.params.maxDets = [max(COCO_MAX_DETS, most)]
        ev.params.areaRng, ev.params.areaRngLbl = [[0.0, float("inf")]], ["all"]
        ev.evaluate()
        ev.accumulate()
    return ev.eval["precision"][:, :, :, 0, -1]


def mean_average_precision(preds: list[dict[str, np.ndarray]], gts: list[dict[str, np.ndarray]],
                           num_classes: int) -> dict[str, object]:
    """``preds``: per image {boxes xyxy, scores, labels}; ``gts``: per image {boxes, labels}.

    Returns mAP50, mAP50-95 (means over the classes that have ground truth; 0.0 when none has),
    ``per_class_ap50`` (NaN for a class without ground truth) and ``per_class_ap50_95`` (0.0 for
    a class without ground truth), all from pycocotools' COCOeval."""
    if len(preds) != len(gts):
        raise ValueError(f"{len(preds)} prediction records for {len(gts)} images")
    has_gt = np.zeros(num_classes, bool)
    for g in gts:
        labels = np.asarray(g["labels"], int).reshape(-1)
        has_gt[labels[(labels >= 0) & (labels < num_classes)]] = True
    ap = np.full((num_classes, 10), np.nan)  # [class, IoU 0.50:0.05:0.95]
    if has_gt.any():
        precision = coco_precision(preds, gts, num_classes)  # [T, R, K]; -1: no ground truth
        has_gt = precision[0, 0] > -1  # COCO's word (it ignores a box of negative area)
        ap[has_gt] = precision[:, :, has_gt].mean(axis=1).T
    return {
        "mAP50": float(ap[has_gt, 0].mean()) if has_gt.any() else 0.0,
        "mAP50-95": float(ap[has_gt].mean()) if has_gt.any() else 0.0,
        "per_class_ap50": ap[:, 0].tolist(),
        "per_class_ap50_95": np.nan_to_num(ap.mean(axis=1), nan=0.0).tolist(),
    }
