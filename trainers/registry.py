"""Trainer plugin registry: framework name -> plugin package (timm ``_registry`` style).

Adding a framework is one folder ``trainers/<name>/`` (``capabilities.json`` + ``train(spec, ctx)``)
plus one line in ``_PLUGINS``. Nothing else in vtp branches on a framework's name: model matching,
task defaults, image-size rules, metrics and override keys all come from the capabilities.
"""

from __future__ import annotations

import functools
import importlib
import importlib.metadata
import json
import os
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

_PLUGINS: dict[str, str] = {
    "ultralytics": "trainers.ultralytics",
    "timm": "trainers.timm",
    "huggingface": "trainers.huggingface",
}
_HERE = Path(__file__).parent


@dataclass(frozen=True)
class ImageSizeRule:
    default: int
    min: int
    max: int
    multiple_of: int = 1


@dataclass(frozen=True)
class Capabilities:
    framework: str
    description: str
    tasks: tuple[str, ...]
    model_families: tuple[str, ...]
    model_pattern: str
    task_suffixes: dict[str, str]
    default_models: dict[str, str]
    dataset_formats: dict[str, str]
    image_size: ImageSizeRule
    metrics: dict[str, list[str]]
    main_metric: dict[str, str]
    resume: bool
    export: tuple[str, ...]
    overrides: dict[str, str] = field(default_factory=dict)
    # key -> {"min", "max", "exclusive_min", "exclusive_max"} for numbers, {"choices"} or {"pattern"} for strings
    override_ranges: dict[str, dict[str, Any]] = field(default_factory=dict)
    task_patterns: dict[str, str] = field(default_factory=dict)  # task -> regex searched in the name; "" = else
    task_architectures: dict[str, str] = field(default_factory=dict)  # task -> regex on a local config.json's architectures

    def known_models(self) -> list[str]:
        """Every concrete model name this framework accepts (for did-you-mean suggestions)."""
        if self.model_pattern == "timm-registry":
            return timm_model_names()
        return _expand_pattern(self)

    def accepts_model(self, model: str) -> bool:
        if self.model_pattern == "timm-registry":
            return model.split(".", 1)[0] in _timm_name_set()
        return re.fullmatch(self.model_pattern, model) is not None

    def task_of(self, model: str) -> str | None:
        """The task a model name implies by its suffix, or None when it implies none.

        A local model folder's ``config.json`` comes first: its ``architectures`` (matched against
        ``task_architectures``), else its ``model_type`` (against ``task_patterns``)."""
        if self.task_architectures:
            architectures, model_type = local_model_config(model)
            for task, pattern in self.task_architectures.items():
                if any(re.search(pattern, a) for a in architectures):
                    return task
            if model_type:
                model = model_type
        for task, pattern in self.task_patterns.items():
            if not pattern or re.search(pattern, model):
                return task
        if not self.task_suffixes:
            return self.tasks[0] if len(self.tasks) == 1 else None
        for task, suffix in sorted(self.task_suffixes.items(), key=lambda kv: -len(kv[1])):
            if suffix and model.endswith(suffix):
                return task
        return next((t for t, s in self.task_suffixes.items() if s == ""), None)

    def model_for_task(self, model: str, task: str) -> str:
        """Give a model the suffix of ``task`` (yolo11s + segment -> yolo11s-seg)."""
        if not self.task_suffixes:
            return model
        base = model
        for suffix in self.task_suffixes.values():
            if suffix and base.endswith(suffix):
                base = base[: -len(suffix)]
        return base + self.task_suffixes.get(task, "")


def local_model_config(model: str) -> tuple[list[str], str | None]:
    """(architectures, model_type) of ``model/config.json`` when ``model`` is a local folder, else ([], None)."""
    try:
        config = json.loads((Path(model).expanduser() / "config.json").read_text())
    except (OSError, ValueError):
        return [], None
    if not isinstance(config, dict):
        return [], None
    architectures = config.get("architectures") or []
    model_type = config.get("model_type")
    return [str(a) for a in architectures], str(model_type) if model_type else None


class Trainer(Protocol):
    def __call__(self, spec: Any, ctx: Any) -> Any: ...


def frameworks() -> list[str]:
    return list(_PLUGINS)


@functools.cache
def capabilities(framework: str) -> Capabilities:
    if framework not in _PLUGINS:
        raise KeyError(framework)
    module_dir = _HERE / _PLUGINS[framework].split(".", 1)[1]
    raw = json.loads((module_dir / "capabilities.json").read_text())
    raw["image_size"] = ImageSizeRule(**raw["image_size"])
    for key in ("tasks", "model_families", "export"):
        raw[key] = tuple(raw[key])
    return Capabilities(**raw)


def all_capabilities() -> list[Capabilities]:
    return [capabilities(f) for f in _PLUGINS]


def get_trainer(framework: str) -> Trainer:
    """Import the framework's plugin lazily (heavy imports happen only in the worker)."""
    return importlib.import_module(_PLUGINS[framework]).train


def _expand_pattern(caps: Capabilities) -> list[str]:
    sizes = "nsmlx"
    return [
        f"{family}{size}{suffix}"
        for family in caps.model_families
        for size in sizes
        for suffix in caps.task_suffixes.values()
    ]


@functools.cache
def _timm_name_set() -> frozenset[str]:
    return frozenset(timm_model_names())


@functools.cache
def timm_model_names() -> list[str]:
    """timm's model names, cached on disk per timm version so validation needs no torch import."""
    from core.settings import get_settings

    version = importlib.metadata.version("timm")
    cache = get_settings().cache_root / f"timm-models-{version}.json"
    try:
        return json.loads(cache.read_text())
    except (OSError, ValueError):
        pass
    import timm

    names = sorted(timm.list_models())
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_name(f"{cache.name}.{os.getpid()}.{threading.get_ident()}.tmp")  # one per writer: no race
    tmp.write_text(json.dumps(names))
    tmp.replace(cache)
    return names
