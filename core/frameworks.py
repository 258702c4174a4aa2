"""Trainer plugins: framework name -> plugin package, found through entry points.

A framework is any installed distribution that declares an entry point in the ``vtp.trainers``
group whose value is its plugin package (``ultralytics = "trainers.ultralytics"``, or
``toy = "vtp_toy"`` from a separate distribution). The package holds a ``capabilities.json`` and a
``train(spec, ctx) -> TrainResult`` function (:class:`Trainer`, see :mod:`core.contracts`).
Nothing else in vtp branches on a framework's name: model matching, task defaults, image-size rules,
metrics and override keys all come from the capabilities.

Discovery reads ``capabilities.json`` through importlib's resource reader without importing the
plugin package (a trainer may import torch at module level); :func:`get_trainer` imports it.
Discovery is cached per process; :func:`clear_cache` forgets it (after installing a plugin, or in
tests that put one on ``sys.path``).
"""

from __future__ import annotations

import functools
import importlib
import importlib.metadata
import importlib.resources
import importlib.util
import json
import os
import re
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from importlib.resources.abc import Traversable

ENTRY_POINT_GROUP = "vtp.trainers"
CAPABILITIES_FILE = "capabilities.json"
# Entry points carry no order (installers sort them by name), but order is policy: TrainSpec takes
# a task's default model from the first framework that has one (detect -> yolo11n, not DETR). The
# plugins vtp ships come first, in this order; every other plugin follows in discovery order.
PREFERENCE = ("ultralytics", "timm", "huggingface")


@dataclass(frozen=True)
class ImageSizeRule:
    """Square input sizes a framework accepts, in pixels."""

    default: int
    min: int
    max: int
    multiple_of: int = 1


@dataclass(frozen=True)
class Capabilities:
    """What one framework trains and accepts: the parsed ``capabilities.json`` of its plugin."""

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
    # what the chat knows of the framework: how people name it (a regex, matched case-insensitively),
    # generic option names -> this framework's override keys ("dropout" -> timm's "drop_rate"), and
    # optimizer names as this framework spells them ("adamw" -> "AdamW"; unlisted names are lower-cased)
    words: str = ""
    # top-level modules the plugin needs (its framework's libraries): without them it is not installed
    requires: tuple[str, ...] = ()
    generic_overrides: dict[str, str] = field(default_factory=dict)
    optimizer_names: dict[str, str] = field(default_factory=dict)
    # device kinds ("cpu", "cuda") on which the framework trains in several processes (TrainSpec.devices)
    multi_device: tuple[str, ...] = ()

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
    """A plugin's ``train(spec: TrainSpec, ctx: TrainContext) -> TrainResult``."""

    def __call__(self, spec: Any, ctx: Any) -> Any: ...


@functools.cache
def _plugins() -> dict[str, str]:
    """Framework name -> plugin package name, from the ``vtp.trainers`` entry points: the names in
    :data:`PREFERENCE` first, then the others in discovery order (``sys.path`` order of the
    distributions). When two distributions declare the same name, the first one found wins, as
    with console scripts."""
    found: dict[str, str] = {}
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        found.setdefault(ep.name, ep.value.split(":", 1)[0].strip())
    rank = {name: i for i, name in enumerate(PREFERENCE)}
    ordered = dict(sorted(found.items(), key=lambda kv: rank.get(kv[0], len(rank))))  # stable: others keep their order
    return {name: package for name, package in ordered.items() if not _missing_modules(package)}


@functools.cache
def _missing_modules(package: str) -> tuple[str, ...]:
    """The modules a plugin's capabilities.json ``requires`` that are not installed (found without
    importing them). A trainer image installs one framework's dependency group; the other plugins'
    code is there but their libraries are not, so those frameworks are not installed there."""
    try:
        required = _raw_capabilities(package).get("requires") or []
    except (OSError, ValueError, ModuleNotFoundError):
        return ()  # capabilities() reports an unreadable file when the framework is used
    return tuple(m for m in required if importlib.util.find_spec(m) is None)


def unavailable() -> dict[str, tuple[str, ...]]:
    """Frameworks declared by an entry point whose required libraries are missing -> those modules
    (e.g. ``{"timm": ("timm",)}`` in the ultralytics trainer image)."""
    found: dict[str, str] = {}
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        found.setdefault(ep.name, ep.value.split(":", 1)[0].strip())
    return {name: missing for name, package in found.items() if (missing := _missing_modules(package))}


def _raw_capabilities(package: str) -> dict[str, Any]:
    return json.loads((_package_files(package) / CAPABILITIES_FILE).read_text(encoding="utf-8"))


def frameworks() -> list[str]:
    """Names of the installed frameworks (entry points of the ``vtp.trainers`` group)."""
    return list(_plugins())


def plugin_package(framework: str) -> str:
    """The plugin package of ``framework`` (``"trainers.timm"``); KeyError when it is not installed."""
    return _plugins()[framework]


def _package_files(package: str) -> Traversable:
    """The resource folder of ``package`` without importing it (its parent packages are imported)."""
    if package in sys.modules:
        return importlib.resources.files(package)
    spec = importlib.util.find_spec(package)
    if spec is None or spec.loader is None:
        raise ModuleNotFoundError(f"trainer plugin package {package!r} is declared but cannot be found", name=package)
    get_reader = getattr(spec.loader, "get_resource_reader", None)
    reader = get_reader(spec.name) if get_reader is not None else None
    if reader is None or not hasattr(reader, "files"):
        return importlib.resources.files(package)  # a loader without a reader: importing is the only way
    return reader.files()


@functools.cache
def capabilities(framework: str) -> Capabilities:
    """The parsed ``capabilities.json`` of ``framework``'s plugin package.

    Raises KeyError when the framework is not installed, FileNotFoundError when the package has no
    capabilities.json, and TypeError/ValueError when the file does not describe a :class:`Capabilities`."""
    if framework not in _plugins():
        raise KeyError(framework)
    raw = _raw_capabilities(_plugins()[framework])
    raw["image_size"] = ImageSizeRule(**raw["image_size"])
    for key in ("tasks", "model_families", "export", "requires", "multi_device"):
        raw[key] = tuple(raw.get(key) or ())
    return Capabilities(**raw)


def all_capabilities() -> list[Capabilities]:
    """The capabilities of every installed framework, in :func:`frameworks` order."""
    return [capabilities(f) for f in _plugins()]


def plugin(framework: str) -> ModuleType:
    """The framework's plugin package, imported (heavy imports happen only where it is used).

    Besides ``train(spec, ctx)`` a plugin exposes, for the API and the export task:
    ``CHECKPOINT`` (the published file or folder under ``checkpoints/``),
    ``load_predictor(ckpt, *, name=None, device="cpu")``, ``predict_images(ckpt, images, **options)
    -> list[dict]``, ``load_for_export(ckpt)`` and ``export_model(ckpt, fmt, image_size, out)``;
    optionally ``preload()`` (warm launcher). KeyError when the framework is not installed."""
    return importlib.import_module(_plugins()[framework])


def get_trainer(framework: str) -> Trainer:
    """The framework's ``train`` (see :func:`plugin`). KeyError when the framework is not installed."""
    return plugin(framework).train


def clear_cache() -> None:
    """Forget discovered plugins and their capabilities (after a plugin was installed or put on
    ``sys.path`` in this process)."""
    importlib.invalidate_caches()
    _plugins.cache_clear()
    _missing_modules.cache_clear()
    capabilities.cache_clear()


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
