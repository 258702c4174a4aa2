"""The training flow: download dataset -> validate -> train -> upload -> clean up.

Run it from Python with ``train_flow({"model": "yolo11n", "dataset": "shapes-detect", "epochs": 2})``
or through the ``train-<framework>`` deployments (``vtp train``). The work lives in ``tasks/``.
"""

from __future__ import annotations

import os
import time
import uuid
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact
from prefect.exceptions import TerminationSignal
from prefect.runtime import flow_run

from core.contracts import Callbacks
from core.settings import get_settings
from core.spec import TrainSpec, parse_spec
from tasks import train_steps as steps
from tasks.api_callbacks import ApiReporter
from tasks.progress import PrefectProgress, report_markdown
from tasks.report import publish_prefect_tables, write_spec
from tasks.tracking import Tracking


class RunCancelled(Exception):
    """The run was cancelled through the API while training; its outputs are not published."""


def _run_id() -> str:
    return str(flow_run.get_id() or uuid.uuid4())


def _cleanup_hook(flow, flow_run, state) -> None:  # noqa: ARG001 - Prefect hook signature
    run_id = (flow_run.parameters or {}).get("run_id") or str(flow_run.id)
    steps.remove_workdir(get_settings().work_root / run_id)


@flow(
    name="train",
    log_prints=True,
    validate_parameters=False,  # parse_spec gives the person-readable messages
    on_cancellation=[_cleanup_hook],
    on_crashed=[_cleanup_hook],
)
def train_flow(spec: TrainSpec, run_id: str | None = None, api_url: str | None = None,
               run_token: str | None = None) -> dict[str, Any]:
    """Train ``spec`` and return the run summary (metrics, checkpoint URI, notes).

    ``run_id`` defaults to the Prefect flow-run id. With ``api_url`` and ``run_token`` (set by the
    API when it submits a run) heartbeats, metrics and the outcome are also posted to the API."""
    logger = get_run_logger()
    started = time.time()
    spec = parse_spec(spec.model_dump() if isinstance(spec, TrainSpec) else dict(spec))
    run_id = run_id or _run_id()
    run_token = run_token or os.environ.get("VTP_RUN_TOKEN")  # Kubernetes pools pass it from a Secret
    settings = get_settings()
    workdir = settings.work_root / run_id
    workdir.mkdir(parents=True, exist_ok=True)
    logger.info("run %s: %s %s on %s, %d epochs", run_id, spec.task, spec.model, spec.dataset, spec.epochs)
    callbacks = Callbacks()
    reporter = ApiReporter(api_url, run_id, run_token) if api_url and run_token else None
    if reporter:
        reporter.attach(callbacks)
        reporter.heartbeat()  # the API marks the run running
    outcome: dict[str, Any] = {"state": "failed"}
    tracking = Tracking.attach(callbacks, settings.trackers, run_id, f"{settings.api_url}/api/runs/{run_id}")
    try:
        local, stats, record = steps.download_dataset(spec, settings)
        logger.info("dataset %s: %d files, %d bytes transferred, %d files from cache",
                    record.name, stats.files_total, stats.bytes_transferred, stats.files_from_cache)
        info, report = steps.validate_dataset(local, spec, workdir)
        PrefectProgress(callbacks, logger, run_id)
        result = steps.run_trainer(spec, info, workdir, callbacks, settings)
        if reporter and reporter.cancel_requested:  # the trainer stopped because the API said cancel
            raise RunCancelled(f"run {run_id} was cancelled during epoch {result.epochs_completed + 1}; nothing uploaded")
        layout = steps.collect_outputs(result, workdir / "outputs")
        layout[write_spec(workdir / "outputs", spec.model_dump(mode="json")).relative_to(workdir / "outputs").as_posix()] = "artifact"
        summary = steps.make_summary(run_id, spec, result, record, stats, settings.storage_url, layout, started)
        summary["dataset_report"] = report
        steps.upload_outputs(run_id, workdir / "outputs", summary, settings)
        tracking.after_upload(workdir / "outputs", summary)
        publish_prefect_tables(workdir / "outputs", run_id)
        create_markdown_artifact(report_markdown(summary), key="train-report",
                                 description=f"vtp run {run_id}")
        logger.info("done: %s = %s, checkpoint %s", summary["main_metric"]["name"],
                    summary["main_metric"]["value"], summary["checkpoint_uri"])
        outcome = {"state": "completed", "metrics": summary["metrics"], "checkpoint_uri": summary["checkpoint_uri"],
                   "epochs_done": summary["epochs_completed"]}
        return summary
    except (TerminationSignal, KeyboardInterrupt):
        # Stopped from outside: a cancel in Prefect or the UI, or the machine going down. Prefect
        # records which (Cancelled or Crashed) and the API mirrors it; claiming "failed" would be wrong.
        outcome = {}
        raise
    except BaseException as e:
        outcome = {"state": "cancelled" if reporter and reporter.cancel_requested else "failed",
                   "error": str(e) or type(e).__name__}
        raise
    finally:
        tracking.close(ok=outcome.get("state") == "completed")
        steps.remove_workdir(workdir)
        if reporter:
            if outcome:
                reporter.done(**outcome)
            reporter.close()


if __name__ == "__main__":
    import sys
    from pathlib import Path

    import yaml

    print(train_flow(yaml.safe_load(Path(sys.argv[1]).read_text())))
