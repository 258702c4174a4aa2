"""Bridge ultralytics' trainer events and log lines to vtp's :class:`~core.contracts.Callbacks`."""

from __future__ import annotations

import contextlib
import logging
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from core.contracts import Callbacks

HEARTBEAT_EVERY_S = 2.0
STOP_POLL_EVERY_S = 1.0
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


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


@dataclass
class RunState:
    """What the hooks saw, for building the TrainResult."""

    epochs_completed: int = 0
    last_metrics: dict[str, float] = field(default_factory=dict)
    final_metrics: dict[str, float] | None = None
    stopped_early: bool = False
    in_epoch: bool = False


def numbers(d: dict[str, Any] | None) -> dict[str, float]:
    out: dict[str, float] = {}
    for k, v in (d or {}).items():
        with contextlib.suppress(TypeError, ValueError):  # non-numeric entries are simply not metrics
            out[str(k)] = float(v)
    return out


def attach(model: Any, callbacks: Callbacks, state: RunState) -> None:
    """Register vtp's hooks on a ``YOLO`` model; the trainer it builds copies them."""
    beat, poll = Throttle(HEARTBEAT_EVERY_S), Throttle(STOP_POLL_EVERY_S)

    def heartbeat(_: Any) -> None:
        if beat():
            callbacks.heartbeat()

    def check_stop(trainer: Any) -> None:
        if callbacks.should_stop():
            trainer.stop = True  # ultralytics breaks between batches, validates, saves, then ends
            if not state.stopped_early:
                callbacks.log(
                    "stop requested: finishing the current epoch's validation and saving checkpoints"
                )
            state.stopped_early = True

    def on_train_epoch_start(_: Any) -> None:
        state.in_epoch = True

    def on_train_batch_end(trainer: Any) -> None:
        heartbeat(trainer)
        if poll():
            check_stop(trainer)

    def on_fit_epoch_end(trainer: Any) -> None:
        # final_eval() fires this event once more, after the loop, with best.pt's metrics
        if not state.in_epoch:
            state.final_metrics = numbers(trainer.metrics)
            return
        state.in_epoch = False
        losses = trainer.label_loss_items(trainer.tloss, prefix="train") if trainer.tloss else {}
        metrics = {**numbers(losses), **numbers(trainer.metrics), **numbers(getattr(trainer, "lr", {}))}
        state.epochs_completed = trainer.epoch + 1
        state.last_metrics = metrics
        callbacks.epoch_end(trainer.epoch + 1, trainer.epochs, metrics)
        callbacks.heartbeat()
        check_stop(trainer)

    model.add_callback("on_train_epoch_start", on_train_epoch_start)
    model.add_callback("on_train_batch_end", on_train_batch_end)
    model.add_callback("on_val_batch_end", heartbeat)
    for slow_phase in (
        "on_pretrain_routine_start",
        "on_pretrain_routine_end",
        "on_train_start",
        "on_val_start",
    ):
        model.add_callback(slow_phase, heartbeat)  # dataset scans and model set-up take a while on big data
    model.add_callback("on_fit_epoch_end", on_fit_epoch_end)


class _Forward(logging.Handler):
    def __init__(self, callbacks: Callbacks) -> None:
        super().__init__(logging.INFO)
        self.callbacks = callbacks

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = _ANSI.sub("", record.getMessage()).strip()
            if message:
                self.callbacks.log(message)
        except Exception:
            self.handleError(record)  # logging's own policy: report on stderr, never break training


@contextlib.contextmanager
def forward_logs(callbacks: Callbacks, logger_name: str = "ultralytics") -> Iterator[None]:
    """Send the logger's records to ``callbacks.log`` while the block runs."""
    handler = _Forward(callbacks)
    logger = logging.getLogger(logger_name)
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)
