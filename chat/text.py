"""Small helpers the parser's passes share."""

from __future__ import annotations

import functools
import re

from chat import lexicon as L

IC = re.IGNORECASE | re.ASCII
HANGUL = re.compile(r"[가-힣ㄱ-ㅎ]")
NAME = r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,98}[A-Za-z0-9])?"  # what DATASET_RE accepts as a name
FIELD_KEYS = {
    "epochs": "epochs", "epoch": "epochs", "ep": "epochs", "image_size": "image_size", "imgsz": "image_size",
    "img_size": "image_size", "imagesize": "image_size", "size": "image_size", "batch_size": "batch_size",
    "batch": "batch_size", "batchsize": "batch_size", "bs": "batch_size", "learning_rate": "learning_rate",
    "lr": "learning_rate", "lr0": "learning_rate", "device": "device", "devices": "devices", "seed": "seed", "patience": "patience",
    "workers": "workers", "num_workers": "workers", "pretrained": "pretrained", "model": "model",
    "task": "task", "framework": "framework", "dataset": "dataset", "data": "dataset",
    "max_time": "max_time", "time_limit": "max_time", "val_fraction": "val_fraction", "val_split": "val_fraction",
    "accumulate": "accumulate", "grad_accum": "accumulate", "gradient_accumulation": "accumulate",
}


def blank(work: str, start: int, end: int) -> str:
    """Replace work[start:end] by spaces: taken, so no later pass reads it again (offsets stay)."""
    return work[:start] + " " * (end - start) + work[end:]


@functools.cache
def _all_override_keys() -> frozenset[str]:
    from core import frameworks as registry

    return frozenset(k for caps in registry.all_capabilities() for k in caps.overrides)


def is_override_key(key: str) -> bool:
    return key in _all_override_keys() or key in {o for _, o in L.OVERRIDE_WORDS} or key == "optimizer"


def is_field_key(key: str) -> bool:
    return key in FIELD_KEYS
