"""Readable names for the metric keys trainers report (ultralytics' ``metrics/mAP50-95(B)``,
``val/loss``, timm's ``metrics/accuracy_top1``), in English and Korean, for the web app, the CLI
and reports. The raw key stays the stored name; this is only how it is shown."""

from __future__ import annotations

import re

_KIND = {"B": ("box", "박스"), "M": ("mask", "마스크"), "P": ("pose", "자세"), "OBB": ("rotated box", "회전 박스")}
_BASE = {"mAP50-95": ("mAP50-95", "mAP50-95"), "mAP50": ("mAP50", "mAP50"), "precision": ("precision", "정밀도"),
         "recall": ("recall", "재현율"), "accuracy_top1": ("top-1 accuracy", "top-1 정확도"),
         "accuracy_top5": ("top-5 accuracy", "top-5 정확도"), "top1": ("top-1 accuracy", "top-1 정확도"),
         "top5": ("top-5 accuracy", "top-5 정확도"), "box_loss": ("box loss", "박스 손실"),
         "cls_loss": ("class loss", "클래스 손실"), "dfl_loss": ("DFL loss", "DFL 손실"),
         "seg_loss": ("mask loss", "마스크 손실"), "pose_loss": ("keypoint loss", "키포인트 손실"),
         "kobj_loss": ("keypoint objectness loss", "키포인트 객체성 손실"), "loss": ("loss", "손실"),
         "accuracy": ("accuracy", "정확도"), "acc": ("accuracy", "정확도"), "f1": ("F1", "F1"),
         "fitness": ("fitness (0.9·mAP50-95 + 0.1·mAP50)", "fitness (0.9·mAP50-95 + 0.1·mAP50)")}
_SPLIT = {"train": ("train", "학습"), "val": ("val", "검증"), "test": ("test", "테스트"), "metrics": ("", "")}
_METRIC_KEY = re.compile(r"^(?:(?P<split>train|val|test|metrics)[/_])?(?P<base>[A-Za-z0-9_.-]+?)(?:\((?P<kind>B|M|P|OBB)\))?$")


def metric_name(key: str, lang: str = "en") -> str:
    """A readable name for a trainer's metric key: ``metrics/mAP50-95(B)`` → "box mAP50-95",
    ``val/loss`` → "val loss", ``metrics/accuracy_top1`` → "top-1 accuracy". Unknown keys are
    returned as they are."""
    i = 1 if lang == "ko" else 0
    m = _METRIC_KEY.match(key)
    if m is None or m.group("base") not in _BASE:
        return key
    parts = [_SPLIT[m.group("split")][i] if m.group("split") else "",
             _KIND[m.group("kind")][i] if m.group("kind") else "", _BASE[m.group("base")][i]]
    return " ".join(p for p in parts if p)
