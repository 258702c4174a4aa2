"""Turns trainer callbacks into what a person watches: a Prefect progress artifact updated every
epoch and one log line per epoch in the run's Prefect logs (which `vtp train` streams)."""

from __future__ import annotations

import logging
import time
from typing import Any

from core.contracts import Callbacks
from core.escape import md_code, md_text


def fmt_metrics(metrics: dict[str, float], limit: int = 8) -> str:
    return " ".join(f"{k}={v:.4g}" for k, v in list(metrics.items())[:limit])


class PrefectProgress:
    """Subscribes to a Callbacks object; safe outside a Prefect run (then it only logs)."""

    def __init__(self, callbacks: Callbacks, logger: logging.Logger | logging.LoggerAdapter, run_id: str):
        self.logger = logger
        self.run_id = run_id
        self.artifact_id: Any = None
        self.started = time.monotonic()
        callbacks.add("on_train_start", self.on_train_start)
        callbacks.add("on_epoch_end", self.on_epoch_end)
        callbacks.add("on_log", self.on_log)

    def on_train_start(self, epochs: int, **_: Any) -> None:
        self.started = time.monotonic()
        try:
            from prefect.artifacts import create_progress_artifact

            self.artifact_id = create_progress_artifact(
                progress=0.0, key="train-progress", description=f"vtp run {self.run_id}: 0/{epochs} epochs"
            )
        except Exception as e:  # no Prefect run context (plain python): progress shows in the logs only
            self.logger.debug("no progress artifact: %s", e)

    def on_epoch_end(self, epoch: int, epochs: int, metrics: dict[str, float]) -> None:
        elapsed = time.monotonic() - self.started
        eta = elapsed / epoch * (epochs - epoch) if epoch else 0.0
        self.logger.info("epoch %d/%d %s eta=%.0fs", epoch, epochs, fmt_metrics(metrics), eta)
        if self.artifact_id is not None:
            from prefect.artifacts import update_progress_artifact

            update_progress_artifact(
                self.artifact_id, progress=100.0 * epoch / epochs,
                description=f"vtp run {self.run_id}: {epoch}/{epochs} epochs, ETA {eta:.0f}s",
            )

    def on_log(self, message: str) -> None:
        self.logger.info("%s", message)


def report_markdown(summary: dict[str, Any]) -> str:
    """The run's Markdown report. Names and texts from user data (dataset, model, notes, spec
    values, metric names) are escaped: no HTML or link in them is live (core/escape.py)."""
    spec = summary["spec"]
    rows = "\n".join(f"| {md_code(k)} | {v:.5g} |" for k, v in summary["metrics"].items())
    notes = "\n".join(f"- {md_text(n)}" for n in summary.get("notes") or []) or "- none"
    spec_rows = "\n".join(f"| {md_text(k)} | {md_code(v)} |" for k, v in spec.items() if v not in (None, {}, []))
    return f"""# vtp run {md_text(summary['run_id'])}

**{md_text(spec['task'])}** · {md_code(spec['model'])} ({md_text(spec['framework'])}) on {md_code(summary['dataset']['name'])} ·
{summary['epochs_completed']}/{spec['epochs']} epochs in {summary['duration_s']:.0f} s

Checkpoint: {md_code(summary['checkpoint_uri'])}

## Final metrics
| metric | value |
|---|---|
{rows}

## Notes
{notes}

## Spec (to reproduce: `vtp train --spec spec.yaml`)
| field | value |
|---|---|
{spec_rows}
"""
