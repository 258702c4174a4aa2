"""The training flow: download dataset -> validate -> train -> upload -> clean up.

Run it from Python with ``train_flow({"model": "yolo11n", "dataset": "shapes-detect", "epochs": 2})``
or through the ``train-<framework>`` deployments (``vtp train``). The work lives in ``tasks/``.
"""

from __future__ import annotations

import os
import random
import socket
import time
import uuid
from pathlib import Path
from typing import Any

from prefect import Flow, flow, get_run_logger
from prefect.artifacts import create_markdown_artifact
from prefect.exceptions import TerminationSignal
from prefect.runtime import flow_run

from core.contracts import Callbacks
from core.durations import describe
from core.errors import ResumeCheckpointError
from core.settings import get_settings
from core.spec import TrainSpec, parse_spec
from tasks import resume
from tasks import train_steps as steps
from tasks.api_callbacks import ApiReporter
from tasks.liveness import Liveness
from tasks.progress import PrefectProgress, report_markdown
from tasks.report import publish_prefect_tables, write_spec
from tasks.run_token import RunAlreadyEnded, obtain_run_token
from tasks.tracking import Tracking
from trainers.loader_workers import install_fork_guard


class RunCancelled(Exception):
    """The run was cancelled through the API while training; its outputs are not published."""


class CrashRetriesExhausted(Exception):
    """The run crashed more often than ``VTP_CRASH_RETRIES`` allows; it is not retried again."""


def _attempt() -> int:
    """1 for a run's first execution; 2, 3, ... when Prefect runs it again after a crash or a retry."""
    try:
        return max(1, int(flow_run.run_count or 1))
    except (TypeError, ValueError):
        return 1


def _fresh_task_runs(attempt: int) -> None:
    """Every step runs again in a retried attempt. Prefect keys task runs by their order in the flow
    run, so attempt 2's "download" would be handed attempt 1's completed result, whose files died
    with the crashed process (or live on another machine): start this attempt's keys elsewhere."""
    if attempt <= 1:
        return
    from prefect.context import FlowRunContext

    context = FlowRunContext.get()
    if context is None:
        return
    for step in (steps.download_dataset, steps.validate_dataset, steps.fetch_checkpoints, steps.run_trainer,
                 steps.fetch_resume_before, steps.export_outputs, steps.upload_outputs):
        context.task_run_dynamic_keys[step.task_key] = (attempt - 1) * 1000


def _retry_delay(attempt: int, base_s: float) -> float:
    """Exponential backoff with jitter before a crashed run goes on: base, 2*base, 4*base, ... (capped)."""
    if base_s <= 0:
        return 0.0
    return min(base_s * 2 ** (attempt - 2), 300.0) * random.uniform(0.75, 1.25)


def _event_now(reporter: ApiReporter | None):
    """Post a run event and wait until it is delivered (the hung watchdog kills the process next)."""
    if reporter is None:
        return None

    def send(kind: str, message: str, **data: Any) -> None:
        reporter.event(kind, message, **data)
        reporter.close(timeout_s=10)

    return send


def _run_id() -> str:
    return str(flow_run.get_id() or uuid.uuid4())


def attempt_workdir(run_id: str, attempt: int) -> Path:
    """Each attempt of a run has its own work folder: a crashed attempt's leftovers (or a process
    not yet dead) never share files with the attempt that replaces it."""
    return get_settings().work_root / run_id / f"attempt-{attempt}"


def _cleanup_hook(flow, flow_run, state) -> None:  # noqa: ARG001 - Prefect hook signature
    run_id = (flow_run.parameters or {}).get("run_id") or str(flow_run.id)
    steps.remove_workdir(attempt_workdir(run_id, max(1, int(flow_run.run_count or 1))))


class StackFlow(Flow):
    """A flow that, called from Python, runs against the server of a running `vtp up` (see
    core.prefect_api.running_stack_server); deployments and workers never go through here."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        from core.prefect_api import running_stack_server

        with running_stack_server():
            return super().__call__(*args, **kwargs)


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
    install_fork_guard()  # data-loader workers forked from here exit cleanly (trainers/loader_workers.py)
    started = time.time()
    # validated once per boundary: a TrainSpec given by python is used as it is; a deployment's
    # parameters arrive as JSON (validate_parameters=False above) and are parsed here, once
    spec = spec if isinstance(spec, TrainSpec) else parse_spec(dict(spec))
    run_id = run_id or _run_id()
    # The API passes a claim ticket, exchanged once per attempt for the run token (tasks/run_token.py);
    # Kubernetes pools may pass a token from a Secret as VTP_RUN_TOKEN
    try:
        run_token = obtain_run_token(api_url, run_id, run_token or os.environ.get("VTP_RUN_TOKEN"))
    except RunAlreadyEnded as e:  # a late retry of a run that is over (e.g. cancelled meanwhile)
        from prefect.states import Cancelled

        logger.warning("%s; this attempt stops without training", e)
        return Cancelled(message=f"{e}; this attempt did nothing")
    settings = get_settings()
    attempt = _attempt()
    workdir = attempt_workdir(run_id, attempt)
    workdir.mkdir(parents=True, exist_ok=True)
    logger.info("run %s: %s %s on %s, %d epochs (attempt %d, pid %d on %s)", run_id, spec.task, spec.model,
                spec.dataset, spec.epochs, attempt, os.getpid(), socket.gethostname())
    callbacks = Callbacks()
    reporter = ApiReporter(api_url, run_id, run_token, attempt=attempt) if api_url and run_token else None
    if reporter:
        reporter.attach(callbacks)
        reporter.heartbeat()  # the API marks the run running
    liveness = Liveness(
        callbacks, every_s=settings.heartbeat_every_s, hung_after_s=settings.hung_after_s, attempt=attempt,
        heartbeat=reporter.heartbeat if reporter else None,
        superseded=(lambda: reporter.superseded) if reporter else None,
        flow_run_id=str(flow_run.get_id()) if flow_run.get_id() else None, logger=logger,
        event=_event_now(reporter), workdir=workdir,
    ).start()
    limit_min = spec.max_time or settings.run_timeout
    deadline = time.monotonic() + limit_min * 60 if limit_min else None
    if deadline is not None:
        callbacks.add_stop_check(lambda: time.monotonic() >= deadline)
    outcome: dict[str, Any] = {"state": "failed"}
    tracking = Tracking.attach(callbacks, settings.trackers, run_id, f"{settings.api_url}/api/runs/{run_id}")
    uploader: resume.ResumeUploader | None = None
    try:
        if attempt > 1 + settings.crash_retries:
            raise CrashRetriesExhausted(
                f"run {run_id} crashed {attempt - 1} times (the training process or its machine died each time); "
                f"vtp retries a crash {settings.crash_retries} times (VTP_CRASH_RETRIES), so it stops here. See the "
                "earlier attempts' logs for the cause; `vtp train --resume RUN` goes on from the last checkpoint."
            )
        _fresh_task_runs(attempt)
        if attempt > 1 and (delay := _retry_delay(attempt, settings.crash_retry_delay_s)):
            logger.warning("attempt %d after a crash: waiting %.0f s before going on", attempt, delay)
            time.sleep(delay)
        local, stats, record = steps.download_dataset(spec, settings)
        logger.info("dataset %s: %d files, %d bytes transferred, %d files from cache",
                    record.name, stats.files_total, stats.bytes_transferred, stats.files_from_cache)
        info, report = steps.validate_dataset(local, spec, workdir, steps.auto_split_of(record, settings)
                                              if spec.val_fraction is not None else None)
        logger.info("dataset %s: %s classes %s, images %s", record.ref,
                    len(report.get("classes") or []), report.get("classes"), report.get("counts"))
        for problem in [p for p in report.get("problems") or [] if p["severity"] == "warning"][:20]:
            logger.warning("dataset: %s: %s", problem["file"], problem["message"])  # what the import said, again
        PrefectProgress(callbacks, logger, run_id)
        point, init_from = steps.fetch_checkpoints(spec, run_id, workdir, settings)
        if point is not None:
            message = (f"resuming after epoch {point.epoch} of {spec.epochs} from the checkpoint uploaded "
                       f"{time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(point.uploaded_at))} (attempt {attempt})")
            logger.warning(message)
            if reporter:
                reporter.event("resumed", message, epoch=point.epoch, attempt=attempt)
        uploader = steps.resume_uploader(callbacks, run_id, workdir, settings, spec, attempt=attempt,
                                         fenced=lambda: liveness.superseded_reason is not None)
        resume_notes: list[str] = []
        with steps.pool_slot(spec, settings, callbacks, logger), liveness.watch():
            while True:
                try:
                    result = steps.run_trainer(spec, info, workdir, callbacks, settings,
                                               resume_from=point.path if point else None, init_from=init_from)
                    break
                except ResumeCheckpointError as e:
                    if point is None:  # nothing was resumed from: not a checkpoint to fall back from
                        raise
                    older = steps.fetch_resume_before(spec, run_id, point.epoch, workdir, settings)
                    message = (f"the resume checkpoint of epoch {point.epoch} could not be loaded "
                               f"({e}); " + (f"going on from the previous one, of epoch {older.epoch}" if older
                                             else "starting the run over from epoch 1"))
                    logger.warning("%s", message)
                    resume_notes.append(message)
                    if reporter:
                        reporter.event("resume_failed", message, epoch=older.epoch if older else 0, attempt=attempt)
                    point = older
                    steps.remove_workdir(workdir / "train")
        result.notes[:0] = [*report.get("run_notes", []), *resume_notes]
        if reporter and reporter.cancel_requested:  # the trainer stopped because the API said cancel
            raise RunCancelled(f"run {run_id} was cancelled during epoch {result.epochs_completed + 1}; nothing uploaded")
        if deadline is not None and time.monotonic() >= deadline and result.epochs_completed < spec.epochs:
            note = (f"stopped at the time limit ({'max_time' if spec.max_time else 'VTP_RUN_TIMEOUT'}="
                    f"{describe(limit_min)}) after {result.epochs_completed} of {spec.epochs} epochs; the published "
                    "checkpoint is the best of those epochs. Raise max_time, or continue it with "
                    f"`vtp train --resume {run_id} epochs=N`.")
            result.notes.append(note)
            logger.warning("%s", note)
            if reporter:
                reporter.event("time_limit", note, epoch=result.epochs_completed, attempt=attempt)
        layout = steps.collect_outputs(result, workdir / "outputs")
        if spec.export:
            result.notes.extend(steps.export_outputs(spec, workdir / "outputs", layout, run_id, info))
        layout[write_spec(workdir / "outputs", spec.model_dump(mode="json")).relative_to(workdir / "outputs").as_posix()] = "artifact"
        summary = steps.make_summary(run_id, spec, result, record, stats, settings.storage_url, layout, started)
        summary["dataset_report"] = report
        summary["attempt"] = attempt
        summary["resumed_from_epoch"] = point.epoch if point else None
        summary["extends"] = spec.extends
        if uploader:
            uploader.close()  # no resumable upload may land after the outputs, which clear it
        steps.upload_outputs(run_id, workdir / "outputs", summary, settings)
        steps.clear_resume_state(run_id, settings)
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
        liveness.stop()
        if uploader:
            uploader.close(wait=outcome.get("state") == "failed")  # a retry wants the newest checkpoint
        tracking.close(ok=outcome.get("state") == "completed")
        steps.remove_workdir(workdir)
        if reporter:
            if outcome:
                reporter.done(**outcome)
            reporter.close()
        elif outcome:
            _register(run_id, spec, outcome, settings, logger)


def _register(run_id: str, spec: TrainSpec, outcome: dict[str, Any], settings: Any, logger: Any) -> None:
    """A run the API did not start (python ``train_flow``, ``vtp train --local``, a schedule or the
    Prefect UI) reports its outcome to the API's ledger when this machine holds an API token and the
    API answers (tasks/ledger.py; never raises). Runs on the API's own Prefect server are adopted by
    the API anyway (api/ledger.py); this also covers a temporary Prefect server the API cannot see."""
    from core.settings import saved_api_token
    from tasks.ledger import register_run

    token = saved_api_token(settings)
    if not token:
        return
    summary = {"run_id": run_id, "state": outcome.get("state"), "metrics": outcome.get("metrics"),
               "checkpoint_uri": outcome.get("checkpoint_uri"), "epochs_completed": outcome.get("epochs_done"),
               "error": outcome.get("error")}
    if register_run(settings.api_url, token, summary, spec.model_dump(mode="json"),
                    prefect_flow_run_id=str(flow_run.get_id()) if flow_run.get_id() else None, timeout_s=3.0):
        logger.info("run %s is in the vtp API's run list at %s", run_id, settings.api_url)


# Prefect's @flow takes no flow class: the instance becomes a StackFlow (a Python call's behaviour only)
train_flow.__class__ = StackFlow


if __name__ == "__main__":
    import sys

    import yaml

    print(train_flow(yaml.safe_load(Path(sys.argv[1]).read_text())))
