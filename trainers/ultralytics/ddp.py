"""Ultralytics' multi-GPU training (``devices=0,1``), relayed to vtp's callbacks.

Ultralytics runs DDP itself: ``YOLO.train(device="0,1")`` writes a temporary script, starts it with
``torch.distributed.run`` and waits (``ultralytics.utils.dist.generate_ddp_command``). vtp's own
hooks cannot go along (ultralytics pickles the trainer's callbacks into the workers, and vtp's hold
the run's HTTP clients), so the calling process follows the run from the files rank 0 writes:

- every ``every_s`` seconds a heartbeat while the workers live;
- each new row of ``results.csv`` is an epoch end with that row's metrics (the names ultralytics
  uses in one process too: ``train/box_loss``, ``metrics/mAP50-95(B)``, ``lr/pg0``, ...);
- a newer ``weights/last.pt`` after an epoch's row is that epoch's checkpoint;
- a stop request ends the workers once the current epoch's ``last.pt`` is written (never during the
  write), and the run finishes with what it has, as in one process.

DDP needs CUDA GPUs (NCCL): it is not run on this project's CPU machines; the relay is tested with
files written as ultralytics writes them (tests/unit/test_multi_device.py).
"""

from __future__ import annotations

import contextlib
import csv
import threading
from pathlib import Path
from typing import Any

from core.contracts import Callbacks
from trainers.ultralytics.hooks import RunState

DDP_LAUNCHER = "torch.distributed.run"  # in the command line of ultralytics' DDP workers


class Relay:
    """Follows ``run_dir`` (ultralytics' save_dir) in a thread while the ``with`` block trains."""

    def __init__(self, run_dir: Path, epochs: int, callbacks: Callbacks, state: RunState,
                 every_s: float = 2.0) -> None:
        self.run_dir, self.epochs, self.callbacks, self.state = Path(run_dir), epochs, callbacks, state
        self.every_s = every_s
        self.stop_requested = False  # the workers were ended on a stop request
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._follow, name="vtp-ddp-relay", daemon=True)
        self._rows = 0
        self._saved_mtime: float | None = None
        self._checkpointed = 0
        self.history: list[tuple[int, dict[str, float]]] = []  # every epoch's row so far

    def __enter__(self) -> Relay:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join()
        self.poll()  # the last epoch's row and checkpoint, written just before the workers ended

    def _follow(self) -> None:
        while not self._done.wait(self.every_s):
            self.callbacks.heartbeat(force=True)
            self.poll()
            if not self.stop_requested and self.callbacks.should_stop() and self._checkpointed == self._rows > 0:
                self.stop_requested = True
                self.state.stopped_early = True
                end_workers()

    def poll(self) -> None:
        """Report the rows and the checkpoint written since the last poll."""
        for epoch, metrics in self._new_rows():
            self.state.epochs_completed, self.state.last_metrics = epoch, metrics
            self.history.append((epoch, metrics))
            self.callbacks.epoch_end(epoch, self.epochs, metrics)
        last = self.run_dir / "weights" / "last.pt"
        with contextlib.suppress(OSError):
            mtime = last.stat().st_mtime
            if self._rows > self._checkpointed and mtime != self._saved_mtime:
                self._saved_mtime, self._checkpointed = mtime, self._rows
                self.callbacks.checkpoint(self.state.epochs_completed, self.epochs, self.run_dir)

    def best(self, main_metric: str) -> dict[str, float]:
        """The metrics of the epoch with the highest ``main_metric`` (the last one on a tie); {} before any."""
        ranked = [m for _, m in self.history]
        return max(reversed(ranked), key=lambda m: m.get(main_metric, float("-inf")), default={})

    def _new_rows(self) -> list[tuple[int, dict[str, float]]]:
        try:
            text = (self.run_dir / "results.csv").read_text()
        except OSError:
            return []
        lines = text.splitlines()
        if not text.endswith("\n"):
            lines = lines[:-1]  # a row still being written
        rows = list(csv.DictReader(lines))
        out = []
        for row in rows[self._rows:]:
            clean = {k.strip(): v.strip() for k, v in row.items() if k and v is not None}
            metrics: dict[str, float] = {}
            for k, v in clean.items():
                with contextlib.suppress(ValueError):
                    metrics[k] = float(v)
            epoch = int(metrics.pop("epoch", len(out) + self._rows + 1))
            metrics.pop("time", None)
            out.append((epoch, metrics))
        self._rows = len(rows)
        return out


def end_workers() -> int:
    """Terminate this process's DDP workers (children started by ``torch.distributed.run``); how many."""
    import psutil

    ended = 0
    for child in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.Error):
            if any(DDP_LAUNCHER in part for part in child.cmdline()):
                child.terminate()
                ended += 1
    return ended


def ddp_note(devices: Any) -> str:
    return (f"ultralytics trains on {devices.describe()} with its own DDP processes; vtp follows them through "
            "results.csv and weights/last.pt (epochs and checkpoints as they are written; a stop ends the "
            "workers after the epoch's checkpoint).")
