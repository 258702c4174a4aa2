"""Bridge ultralytics' trainer events and log lines to vtp's :class:`~core.contracts.Callbacks`."""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from core.contracts import Callbacks

_ANSI = re.compile(r"\x1b\[[0-9;]*m")



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

    def heartbeat(_: Any) -> None:
        callbacks.heartbeat()  # throttled by Callbacks

    def check_stop(trainer: Any, force: bool = False) -> None:
        if callbacks.should_stop(force=force):
            trainer.stop = True  # ultralytics breaks between batches, validates, saves, then ends
            if not state.stopped_early:
                callbacks.log(
                    "stop requested: finishing the current epoch's validation and saving checkpoints"
                )
            state.stopped_early = True

    def on_train_epoch_start(_: Any) -> None:
        state.in_epoch = True

    def on_train_batch_end(trainer: Any) -> None:
        callbacks.heartbeat()
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
        callbacks.heartbeat(force=True)
        check_stop(trainer, force=True)

    def on_model_save(trainer: Any) -> None:  # this epoch's last.pt, best.pt and results.csv are written
        callbacks.checkpoint(trainer.epoch + 1, trainer.epochs, trainer.save_dir)

    model.add_callback("on_train_epoch_start", on_train_epoch_start)
    model.add_callback("on_model_save", on_model_save)
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
