"""TrainSpec: the one contract chat/, api/, flows and trainers speak.

Its validators are the single source of truth for what is allowed. Every message names the field,
what was given, what is accepted, and a did-you-mean where one is close.
"""

from __future__ import annotations

import difflib
import math
import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from core import frameworks as registry
from core.devices import parse_devices

Task = Literal["detect", "segment", "classify", "pose", "obb"]
# A framework is any installed trainer plugin (core.frameworks: the ``vtp.trainers`` entry points), so
# the type is a name, checked against the installed ones when a spec is made.
Framework = str
TASKS: tuple[str, ...] = ("detect", "segment", "classify", "pose", "obb")
MAX_EPOCHS = 10_000
MAX_BATCH = 4096
DEVICE_RE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?|\d+(,\d+)*)$")
# a registered name, optionally pinned to a version (pets@v2, pets@3fa9c1), or a storage URI
DATASET_RE = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]{0,99}(@(v\d{1,6}|[0-9a-f]{4,64}))?|(file|s3)://\S+)$")
RUN_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]{0,63}$")
_TYPES = {"int": int, "float": (int, float), "bool": bool, "str": str}
MAX_SEED = 2**32 - 1  # what numpy/torch seeding takes; Prefect's parameters must also stay within 64 bits
MAX_OVERRIDE_STR = 100
MAX_ACCUMULATE = 64
MAX_VAL_FRACTION = 0.5
MAX_CLASSES = 10_000


def suggest(value: str, choices: list[str] | tuple[str, ...]) -> str:
    close = difflib.get_close_matches(value.lower(), list(choices), n=3, cutoff=0.6)
    return f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""


def normalize_model(name: str) -> str:
    """'YOLO11n.pt' -> 'yolo11n'; hub ids (org/name) keep their case."""
    name = name.strip()
    if "/" in name:
        return name
    name = name.lower()
    for ext in (".pt", ".yaml", ".pth"):
        if name.endswith(ext):
            name = name[: -len(ext)]
    return name


def framework_of(model: str) -> str | None:
    for caps in registry.all_capabilities():
        if caps.model_pattern != "timm-registry" and caps.accepts_model(model):
            return caps.framework
    for caps in registry.all_capabilities():  # the large registries last
        if caps.model_pattern == "timm-registry" and caps.accepts_model(model):
            return caps.framework
    return None


def _all_model_names() -> list[str]:
    names: list[str] = []
    for caps in registry.all_capabilities():
        names.extend(caps.known_models())
    return names


class TrainSpec(BaseModel):
    """What to train, on what, for how long. Omitted fields are inferred or defaulted."""

    model_config = ConfigDict(extra="forbid", validate_assignment=False)

    task: Task | None = Field(default=None, description="detect | segment | classify | pose | obb; inferred from the model.")
    framework: Framework | None = Field(default=None, description="Inferred from the model.")
    model: str | None = Field(default=None, description="The framework's own name: yolo11n, yolov8s-seg, resnet50, ...")
    dataset: str = Field(description="A registered dataset name (its latest version), a name pinned to a version "
                               "(pets@v1, or pets@<hash prefix>), or a storage URI (file://..., s3://bucket/prefix).")
    epochs: int = Field(default=10, description=f"1 to {MAX_EPOCHS}.")
    image_size: int | None = Field(default=None, description="Square input size in pixels; the framework's default when omitted.")
    batch_size: int = Field(default=16, description=f"1 to {MAX_BATCH}.")
    device: str = Field(default="auto", description="auto | cpu | cuda | cuda:N | N (GPU index) | mps: the one device "
                        "of a run in one process. A list of GPUs (0,1) moves to devices.")
    devices: str | None = Field(
        default=None,
        description="Train in several processes, one per device: GPUs '0,1' (DDP) or 'cpu:2' (two CPU processes, "
        "gloo). batch_size is the whole step's batch, split evenly over the devices; each takes one training slot "
        "of the work pool. Default: one process on device.",
    )
    seed: int = Field(default=0, description=f"0 to {MAX_SEED} (2**32-1).")
    patience: int = Field(default=50, description="Epochs without improvement before early stopping; 0 turns it off.")
    learning_rate: float | None = Field(default=None, description="Initial learning rate; the framework's default when omitted.")
    pretrained: bool = Field(default=True, description="Start from pretrained weights when they can be had.")
    workers: int = Field(default=2, description="Data-loader worker processes.")
    overrides: dict[str, Any] = Field(default_factory=dict, description="Framework-specific settings, checked against its capabilities.")
    max_time: float | None = Field(
        default=None,
        description="Wall-clock limit of the training in minutes (90) or as text ('1.5h', '2h30m', '45m'): at the "
        "limit the trainer stops, validates and publishes what it has, with a note. Default: VTP_RUN_TIMEOUT "
        "(no limit unless set).",
    )
    val_fraction: float | None = Field(
        default=None,
        description="Share of the train images (0 < v <= 0.5) moved to a validation split when the dataset has none. "
        "A dataset whose val split vtp made at import (default 0.2) is split again with this share, seeded and "
        "stratified as at import; a dataset with its own val split keeps it, with a note.",
    )
    accumulate: int | None = Field(
        default=None,
        description=f"Gradient accumulation: batches (1 to {MAX_ACCUMULATE}) whose gradients are summed before each "
        "optimizer step, so one step sees batch_size x accumulate images. Default: the framework's (ultralytics "
        "accumulates up to a nominal batch of 64 images; timm and Hugging Face step every batch).",
    )
    classes: list[str] | None = Field(
        default=None,
        description="Train on these dataset classes only (names as in the dataset, at least one): the model learns "
        "just them, in this order; other classes' objects leave the labels (their images stay, as background) and "
        "other class folders of a classification dataset are left out.",
    )
    export: list[str] = Field(
        default_factory=list,
        description="Formats to export the best checkpoint to when training ends (the framework's capabilities "
        "list them: onnx, torchscript); each lands in the run's files as exports/model.<ext>.",
    )
    extends: str | None = Field(
        default=None,
        description="Id of a finished run to continue: training starts from its final weights "
        "(`vtp train --resume RUN`, \"이어서 50 에폭 더\"). Same model and dataset classes.",
    )

    @field_validator("epochs")
    @classmethod
    def _epochs(cls, v: int) -> int:
        if not 1 <= v <= MAX_EPOCHS:
            raise ValueError(f"epochs={v} is not allowed: use a whole number from 1 to {MAX_EPOCHS}")
        return v

    @field_validator("batch_size")
    @classmethod
    def _batch(cls, v: int) -> int:
        if not 1 <= v <= MAX_BATCH:
            raise ValueError(f"batch_size={v} is not allowed: use a whole number from 1 to {MAX_BATCH}")
        return v

    @field_validator("seed")
    @classmethod
    def _seed(cls, v: int) -> int:
        if not 0 <= v <= MAX_SEED:
            raise ValueError(f"seed={v} is not allowed: use a whole number from 0 to {MAX_SEED} (2**32-1)")
        return v

    @field_validator("workers")
    @classmethod
    def _workers(cls, v: int) -> int:
        if not 0 <= v <= 64:
            raise ValueError(f"workers={v} is not allowed: use 0 to 64 data-loader processes")
        return v

    @field_validator("patience")
    @classmethod
    def _patience(cls, v: int) -> int:
        if not 0 <= v <= MAX_EPOCHS:
            raise ValueError(f"patience={v} is not allowed: use 0 (off) to {MAX_EPOCHS}")
        return v

    @field_validator("learning_rate")
    @classmethod
    def _lr(cls, v: float | None) -> float | None:
        if v is not None and not 0 < v <= 10:
            raise ValueError(f"learning_rate={v} is not allowed: use a value above 0 and at most 10 (e.g. 0.01)")
        return v

    @field_validator("device")
    @classmethod
    def _device(cls, v: str) -> str:
        v = str(v).strip().lower()
        if not DEVICE_RE.match(v):
            raise ValueError(f"device={v!r} is not a device: use auto, cpu, cuda, cuda:0, 0 or mps")
        return v

    @field_validator("devices")
    @classmethod
    def _devices(cls, v: str | None) -> str | None:
        return None if v is None or not str(v).strip() else str(parse_devices(v))

    @field_validator("dataset")
    @classmethod
    def _dataset(cls, v: str) -> str:
        v = v.strip()
        if not DATASET_RE.match(v):
            raise ValueError(
                f"dataset={v!r} is not a dataset name or storage URI: use a registered name "
                "(letters, digits, '.', '_' or '-'; see `vtp datasets list`), pinned to a version as NAME@v2, "
                "or file://... / s3://bucket/prefix"
            )
        return v

    @field_validator("max_time", mode="before")
    @classmethod
    def _max_time(cls, v: Any) -> float | None:
        from core.durations import parse_minutes

        return parse_minutes(v, "max_time")

    @field_validator("val_fraction")
    @classmethod
    def _val_fraction(cls, v: float | None) -> float | None:
        if v is not None and not (math.isfinite(v) and 0 < v <= MAX_VAL_FRACTION):
            raise ValueError(f"val_fraction={v} is not allowed: use a share above 0 and at most {MAX_VAL_FRACTION} "
                             "(0.2 puts a fifth of the train images in val)")
        return v

    @field_validator("accumulate")
    @classmethod
    def _accumulate(cls, v: int | None) -> int | None:
        if v is not None and not 1 <= v <= MAX_ACCUMULATE:
            raise ValueError(f"accumulate={v} is not allowed: use a whole number of batches from 1 to {MAX_ACCUMULATE}")
        return v

    @field_validator("classes", mode="before")
    @classmethod
    def _classes(cls, v: Any) -> list[str] | None:
        if v is None:
            return None
        if isinstance(v, str):  # key=value on the command line: classes=person,car
            v = [part for part in re.split(r"\s*,\s*", v.strip()) if part]
        if not isinstance(v, list | tuple) or not all(isinstance(c, str) for c in v):
            raise ValueError("classes should be a list of class names, e.g. [\"person\", \"car\"]")
        names = [c.strip() for c in v]
        if not names or any(not c or len(c) > 200 for c in names) or len(names) > MAX_CLASSES:
            raise ValueError(f"classes should list 1 to {MAX_CLASSES} class names of the dataset, each 1 to 200 characters")
        dup = sorted({c for c in names if names.count(c) > 1})
        if dup:
            raise ValueError(f"classes lists {', '.join(dup)} more than once: list each class once")
        return names

    @field_validator("export", mode="before")
    @classmethod
    def _export(cls, v: Any) -> list[str]:
        if v is None:
            return []
        if isinstance(v, str):
            v = [part for part in re.split(r"[\s,]+", v.strip()) if part]
        if not isinstance(v, list | tuple) or not all(isinstance(f, str) for f in v):
            raise ValueError("export should be a list of format names, e.g. [\"onnx\"]")
        out: list[str] = []
        for f in (f.strip().lower() for f in v):
            if f not in out:
                out.append(f)
        return out

    @field_validator("extends")
    @classmethod
    def _extends(cls, v: str | None) -> str | None:
        if v is not None and not RUN_ID_RE.match(v.strip()):
            raise ValueError(f"extends={v!r} is not a run id: give the id of a finished run (see `vtp runs`)")
        return v.strip() if v else None

    @field_validator("framework")
    @classmethod
    def _framework(cls, v: str | None) -> str | None:
        installed = registry.frameworks()
        if v is not None and v not in installed:
            raise ValueError(
                f"framework={v!r} is not installed: the installed frameworks are {', '.join(installed) or 'none'}"
                f" (trainer plugins register in the {registry.ENTRY_POINT_GROUP!r} entry-point group)."
                + suggest(v, installed)
            )
        return v

    @field_validator("model", mode="before")
    @classmethod
    def _model(cls, v: Any) -> Any:
        return normalize_model(v) if isinstance(v, str) and v.strip() else None

    @model_validator(mode="after")
    def _resolve(self) -> TrainSpec:
        """Infer framework/task/model and check they agree, then check size and overrides."""
        if self.model is not None:
            fw = framework_of(self.model)
            if fw is None:
                raise ValueError(
                    f"model={self.model!r} is not a model vtp can train: use a YOLO name such as "
                    f"yolo11n, yolov8s-seg or yolo11m-pose, or any timm model such as resnet50."
                    + suggest(self.model, _all_model_names())
                )
            if self.framework is not None and self.framework != fw:
                raise ValueError(
                    f"framework={self.framework!r} does not train model={self.model!r} (that is a {fw} model): "
                    f"drop framework or set it to {fw!r}"
                )
            self.framework = fw
        caps = None
        if self.framework is not None:
            caps = registry.capabilities(self.framework)
        if self.model is not None and caps is not None:
            implied = caps.task_of(self.model)
            if self.task is None:
                self.task = implied
            elif self.task not in caps.tasks:
                others = [c.default_models[self.task] for c in registry.all_capabilities() if self.task in c.tasks]
                raise ValueError(
                    f"task={self.task!r} does not fit model={self.model!r}: {caps.framework} models do "
                    f"{', '.join(caps.tasks)}; for {self.task} use e.g. {others[0] if others else 'another model'}"
                )
            elif implied != self.task:
                if caps.task_suffixes and self.model == caps.model_for_task(self.model, implied or ""):
                    base_has_suffix = implied != next(t for t, s in caps.task_suffixes.items() if s == "")
                    if base_has_suffix:
                        raise ValueError(
                            f"task={self.task!r} does not fit model={self.model!r}, which is a {implied} model: "
                            f"use model={caps.model_for_task(self.model, self.task)!r} or task={implied!r}"
                        )
                self.model = caps.model_for_task(self.model, self.task)
        if self.model is None:
            if self.task is None:
                raise ValueError("task is missing and no model was given: set task (detect, segment, classify, pose, obb) or model")
            for c in registry.all_capabilities():
                if (self.framework in (None, c.framework)) and self.task in c.default_models:
                    if self.task == "classify" and self.framework is None and c.framework != "timm":
                        continue
                    caps, self.framework, self.model = c, c.framework, c.default_models[self.task]
                    break
            if self.model is None:
                raise ValueError(f"task={self.task!r} has no default model for framework={self.framework!r}: set model")
        assert caps is not None
        if self.export and (unknown := [f for f in self.export if f not in caps.export]):
            raise ValueError(
                f"export={unknown[0]!r} is not an export format of {caps.framework}: use "
                f"{' or '.join(caps.export) or 'nothing (it exports no formats)'}" + suggest(unknown[0], list(caps.export))
            )
        if self.accumulate is not None and "nbs" in self.overrides:
            raise ValueError("accumulate and overrides.nbs both set how many images one optimizer step sees: keep "
                             f"one (accumulate={self.accumulate} means a nominal batch of batch_size x accumulate)")
        self._check_image_size(caps)
        self._check_overrides(caps)
        self._check_devices(caps)
        return self

    def _check_devices(self, caps: registry.Capabilities) -> None:
        """Move a GPU list given as ``device`` (0,1) to ``devices``; check the two agree, that the
        framework trains on several devices of that kind, and that batch_size splits evenly."""
        if "," in self.device:
            if self.devices is not None and self.devices != str(parse_devices(self.device)):
                raise ValueError(f"device={self.device!r} and devices={self.devices!r} name different GPUs: set devices only")
            self.devices, self.device = str(parse_devices(self.device)), "cuda"
        if self.devices is None:
            return
        devs = parse_devices(self.devices)
        fits = ("auto", "cpu") if devs.kind == "cpu" else ("auto", "cuda", *(str(i) for i in devs.gpus),
                                                           *(f"cuda:{i}" for i in devs.gpus))
        if self.device not in fits:
            raise ValueError(f"device={self.device!r} and devices={self.devices!r} disagree: set devices only "
                             "(device is the one device of a single-process run)")
        if devs.count == 1:  # one process: the single-device path, said plainly in the spec
            self.device, self.devices = ("cpu" if devs.kind == "cpu" else f"cuda:{devs.gpus[0]}"), None
            return
        self.device = devs.kind
        if devs.kind not in caps.multi_device:
            where = (f"only on {' or '.join(k.upper() for k in caps.multi_device)} devices"
                     if caps.multi_device else "on one device only")
            raise ValueError(f"{caps.framework} trains in several processes {where}, not on {devs.describe()}: "
                             f"use one device (device=cpu or 0)" + (" or GPUs, e.g. devices=0,1" if caps.multi_device else ""))
        if self.batch_size % devs.count:
            lower = self.batch_size - self.batch_size % devs.count
            raise ValueError(f"batch_size={self.batch_size} does not split evenly over {devs.count} devices ({devs.describe()}): "
                             f"use a multiple of {devs.count}, e.g. {lower or devs.count}")

    @property
    def device_count(self) -> int:
        """Training processes of the run: 1 unless ``devices`` names several (its slot count in the pool)."""
        return parse_devices(self.devices).count if self.devices else 1

    def _check_image_size(self, caps: registry.Capabilities) -> None:
        rule = caps.image_size
        if self.image_size is None:
            self.image_size = rule.default
            return
        if not rule.min <= self.image_size <= rule.max:
            raise ValueError(
                f"image_size={self.image_size} is out of range for {caps.framework}: use {rule.min} to {rule.max} "
                f"(default {rule.default})"
            )
        if self.image_size % rule.multiple_of:
            lo = self.image_size // rule.multiple_of * rule.multiple_of
            raise ValueError(
                f"image_size={self.image_size} must be a multiple of {rule.multiple_of} for {caps.framework}: "
                f"use {max(lo, rule.min)} or {lo + rule.multiple_of}"
            )

    def _check_overrides(self, caps: registry.Capabilities) -> None:
        own = set(type(self).model_fields)
        for key, value in self.overrides.items():
            if key in own or key in {"imgsz", "batch", "lr0", "lr"}:
                raise ValueError(f"overrides.{key} duplicates a TrainSpec field: set it as a field, not an override")
            if key not in caps.overrides:
                raise ValueError(
                    f"overrides.{key} is not a {caps.framework} setting vtp accepts."
                    + suggest(key, list(caps.overrides))
                    + f" Accepted: {', '.join(sorted(caps.overrides))}"
                )
            expected = _TYPES[caps.overrides[key]]
            if not isinstance(value, expected) or (expected is not bool and isinstance(value, bool)):
                raise ValueError(f"overrides.{key}={value!r} should be a {caps.overrides[key]}")
            canonical = _check_override_range(key, value, caps.override_ranges.get(key), caps.framework,
                                              caps.overrides[key])
            if canonical is not value:
                self.overrides[key] = canonical

    @property
    def capabilities(self) -> registry.Capabilities:
        return registry.capabilities(self.framework or "")

    @property
    def main_metric(self) -> str:
        return self.capabilities.main_metric[self.task or ""]


def _describe_range(rule: dict[str, Any], kind: str) -> str:
    lo, hi = rule.get("min"), rule.get("max")
    parts = []
    if lo is not None:
        parts.append(f"above {lo}" if rule.get("exclusive_min") else f"at least {lo}")
    if hi is not None:
        parts.append(f"below {hi}" if rule.get("exclusive_max") else f"at most {hi}")
    return f"{'a whole number' if kind == 'int' else 'a finite number'} {' and '.join(parts)}".rstrip()


def _check_override_range(key: str, value: Any, rule: dict[str, Any] | None, framework: str, kind: str) -> Any:
    """Every passed-through override within its range or set (capabilities.json ``override_ranges``):
    a value the framework would choke on, or pass on to another component, is refused here. Returns
    the value, a choice in the framework's own spelling when only its case differed."""
    if isinstance(value, bool):
        return value
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"overrides.{key}={value!r} is not allowed: use a finite number"
                         + (f" ({_describe_range(rule, 'float')})" if rule else ""))
    if isinstance(value, int | float):
        if abs(value) > 1e15:  # beyond any override's meaning; keeps Prefect's 64-bit parameters safe
            raise ValueError(f"overrides.{key}={value!r} is not allowed: use a number between -1e15 and 1e15")
        if not rule:
            return value
        lo, hi = rule.get("min"), rule.get("max")
        too_low = lo is not None and (value <= lo if rule.get("exclusive_min") else value < lo)
        too_high = hi is not None and (value >= hi if rule.get("exclusive_max") else value > hi)
        if too_low or too_high:
            raise ValueError(f"overrides.{key}={value!r} is out of range for {framework}: use {_describe_range(rule, kind)}")
        return value
    if isinstance(value, str):
        if len(value) > MAX_OVERRIDE_STR:
            raise ValueError(f"overrides.{key} is {len(value)} characters long: use at most {MAX_OVERRIDE_STR}")
        if rule and "choices" in rule and value not in rule["choices"]:
            same = [c for c in rule["choices"] if c.lower() == value.lower()]
            if same:
                return same[0]
            raise ValueError(f"overrides.{key}={value!r} is not accepted by {framework}: use one of "
                             f"{', '.join(rule['choices'])}." + suggest(value, [c.lower() for c in rule["choices"]]))
        if rule and "pattern" in rule and not re.fullmatch(rule["pattern"], value):
            raise ValueError(f"overrides.{key}={value!r} is not a {framework} {key} name: use letters, digits "
                             "and '_' (e.g. adamw, sgd, lamb)")
    return value


def explain(error: ValidationError) -> str:
    """One line per problem, naming the field; for people, not for tracebacks."""
    lines = []
    for err in error.errors():
        loc = ".".join(str(p) for p in err.get("loc", ()))
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = f"{loc} is not a TrainSpec field." + suggest(loc, list(TrainSpec.model_fields))
        elif err["type"] == "missing":
            msg = f"{loc} is required: {TrainSpec.model_fields[loc].description}" if loc in TrainSpec.model_fields else f"{loc} is required"
        elif loc and not msg.startswith(loc.split(".")[0]):
            msg = f"{loc}={err.get('input')!r}: {msg}"
        lines.append(msg)
    return "\n".join(lines)


def parse_spec(data: dict[str, Any]) -> TrainSpec:
    """Validate ``data`` into a TrainSpec or raise SpecError with a readable message."""
    from core.errors import SpecError

    try:
        return TrainSpec.model_validate(data)
    except ValidationError as e:
        raise SpecError(explain(e)) from None
