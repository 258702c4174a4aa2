"""The trainer plugin contract: ``train(spec, ctx) -> TrainResult``.

``ctx`` carries the workdir, the local dataset and the callbacks. Callbacks follow ultralytics'
event registry (event name -> list of callables), so integrations add themselves without the
trainers knowing about them.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

RUN_TICKET_PREFIX = "vtpclaim."  # a claim ticket (API → flow), never a valid JWT: it cannot pass as a run token


def is_run_ticket(value: str | None) -> bool:
    """Whether ``value`` is a claim ticket (exchanged once per attempt for a run token), not a token."""
    return bool(value) and str(value).startswith(RUN_TICKET_PREFIX)


PER_CLASS = "per_class.json"  # a trainer's per-class metrics table (outputs/artifacts/), read by tasks.report
EVENTS = ("on_train_start", "on_epoch_end", "on_checkpoint", "on_heartbeat", "on_log", "on_train_end")
log = logging.getLogger("vtp")


class Throttle:
    """True at most once per ``every_s`` seconds (the first call is always True)."""

    def __init__(self, every_s: float) -> None:
        self.every_s = every_s
        self._last = float("-inf")

    def __call__(self) -> bool:
        now = time.monotonic()
        if now - self._last >= self.every_s:
            self._last = now
            return True
        return False


class Callbacks:
    """Event name -> callables. Trainers call :meth:`epoch_end`, :meth:`heartbeat`, :meth:`log`
    and poll :meth:`should_stop`; the flow and integrations subscribe with :meth:`add`.

    Heartbeats and stop polls throttle themselves, so a trainer may call them on every batch."""

    def __init__(self, heartbeat_every_s: float = 2.0, stop_poll_every_s: float = 1.0) -> None:
        self._handlers: dict[str, list[Callable[..., Any]]] = defaultdict(list)
        self._stop_checks: list[Callable[[], bool]] = []
        self._beat = Throttle(heartbeat_every_s)
        self._poll = Throttle(stop_poll_every_s)
        self._stop_requested = False
        self.epochs: list[dict[str, Any]] = []
        # Where the trainer is, for the hung-trainer watchdog (tasks/liveness.py): updated on every
        # heartbeat, epoch end, checkpoint and log line, unthrottled (a few attribute writes).
        self.last_progress = time.monotonic()  # monotonic seconds
        self.epoch_now = 0  # the epoch being trained (1-based; 0 before training starts)
        self.epochs_total = 0
        self.beats_in_epoch = 0  # heartbeats since the epoch started: about one per batch

    def add(self, event: str, fn: Callable[..., Any]) -> None:
        if event not in EVENTS:
            raise ValueError(f"unknown callback event {event!r}; events: {', '.join(EVENTS)}")
        self._handlers[event].append(fn)

    def add_stop_check(self, fn: Callable[[], bool]) -> None:
        self._stop_checks.append(fn)

    def run(self, event: str, **kwargs: Any) -> None:
        for fn in self._handlers.get(event, ()):
            fn(**kwargs)

    def train_start(self, *, epochs: int, **info: Any) -> None:
        self.epochs_total, self.epoch_now, self.beats_in_epoch = epochs, max(self.epoch_now, 1), 0
        self.progress()
        self.run("on_train_start", epochs=epochs, **info)

    def progress(self) -> None:
        """Mark that the trainer moved forward (any heartbeat, epoch, checkpoint or log line does)."""
        self.last_progress = time.monotonic()

    def where(self) -> str:
        """Where training is, for people: 'epoch 3/10, 17 batches in' (batches = heartbeats)."""
        if not self.epoch_now:
            return "before training started (dataset, model or slot set-up)"
        return f"epoch {self.epoch_now}/{self.epochs_total or '?'}, {self.beats_in_epoch} batches in"

    def epoch_end(self, epoch: int, epochs: int, metrics: dict[str, float]) -> None:
        """Report epoch ``epoch`` (1-based) of ``epochs`` with its metrics (floats only)."""
        clean = {k: float(v) for k, v in metrics.items() if _is_number(v)}
        self.epoch_now, self.epochs_total, self.beats_in_epoch = epoch + 1, epochs, 0
        self.progress()
        self.epochs.append({"epoch": epoch, "epochs": epochs, "metrics": clean, "time": time.time()})
        self.run("on_epoch_end", epoch=epoch, epochs=epochs, metrics=clean)

    def checkpoint(self, epoch: int, epochs: int, path: Path) -> None:
        """Report that ``path`` (a file or a folder) now holds the complete resumable state after
        epoch ``epoch`` (1-based): weights, optimizer, scheduler, epoch counter. The flow uploads it
        every K epochs so a crashed run can go on from there. Call it after the write has finished."""
        self.progress()
        self.run("on_checkpoint", epoch=epoch, epochs=epochs, path=Path(path))

    def heartbeat(self, force: bool = False) -> None:
        """The trainer is making progress (call it every batch). Progress is recorded on every call;
        the ``on_heartbeat`` handlers run at most every ``heartbeat_every_s`` unless ``force``."""
        self.beats_in_epoch += 1
        self.last_progress = time.monotonic()
        if force or self._beat():
            self.run("on_heartbeat")

    def log(self, message: str) -> None:
        self.progress()
        self.run("on_log", message=message)

    def train_end(self, result: TrainResult) -> None:
        self.run("on_train_end", result=result)

    def should_stop(self, force: bool = False) -> bool:
        """True once any stop check said so (sticky); the checks run at most once per poll interval."""
        if not self._stop_requested and (force or self._poll()):
            self._stop_requested = any(check() for check in self._stop_checks)
        return self._stop_requested


def _is_number(v: Any) -> bool:
    try:
        float(v)
    except (TypeError, ValueError):
        return False
    return True


@dataclass
class DatasetInfo:
    """A dataset materialised on local disk, as the trainers see it."""

    root: Path
    format: str  # yolo | imagefolder
    task: str | None
    classes: list[str]
    splits: dict[str, int] = field(default_factory=dict)  # split -> image count
    data_yaml: Path | None = None  # for the yolo format: a data.yaml with absolute paths
    kpt_shape: list[int] | None = None


@dataclass
class TrainContext:
    workdir: Path
    dataset: DatasetInfo
    callbacks: Callbacks = field(default_factory=Callbacks)
    weights_dir: Path | None = None
    download_timeout_s: float = 10.0
    # A checkpoint this run's trainer reported through ``Callbacks.checkpoint`` in an earlier attempt
    # (the run crashed and was retried): restore weights, optimizer and scheduler, go on after its epoch.
    resume_from: Path | None = None
    # The final checkpoint of an earlier, finished run (``vtp train --resume RUN``): start from its weights.
    init_from: Path | None = None

    @property
    def dataset_path(self) -> Path:
        return self.dataset.root


@dataclass
class TrainResult:
    metrics: dict[str, float]
    best_checkpoint: Path
    last_checkpoint: Path
    artifacts: list[Path] = field(default_factory=list)
    epochs_completed: int = 0
    pretrained_used: bool = False
    notes: list[str] = field(default_factory=list)
    stopped_early: bool = False
