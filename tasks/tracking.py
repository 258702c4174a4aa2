"""Experiment tracking in ClearML and/or MLflow, once for every trainer.

``VTP_TRACKERS=clearml,mlflow`` chooses the tools; each is then configured by its own environment
(``MLFLOW_TRACKING_URI``, ``CLEARML_*`` / ``~/clearml.conf``, ``CLEARML_OFFLINE_MODE=1``). Like
ultralytics' ``utils/callbacks``, each integration imports its package behind a guard and is a no-op
when not chosen or not installed. They subscribe to :class:`~core.contracts.Callbacks` events: one
experiment per run with the spec as parameters (``on_train_start``), every epoch's metrics
(``on_epoch_end``); :meth:`Tracking.after_upload` logs the checkpoint and report files and the link
back to the vtp run. The frameworks' own integrations stay off (ultralytics' settings file turns
clearml/mlflow off; the HF trainer uses no transformers Trainer), so nothing is logged twice.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Any

from core.contracts import Callbacks

log = logging.getLogger("vtp.tracking")
KNOWN = ("clearml", "mlflow")


def flat_params(spec: dict[str, Any], prefix: str = "") -> dict[str, str]:
    out: dict[str, str] = {}
    for k, v in spec.items():
        if isinstance(v, dict):
            out |= flat_params(v, f"{prefix}{k}.")
        elif v is not None:
            out[f"{prefix}{k}"] = str(v)
    return out


def _files(outputs: Path, summary: dict[str, Any]) -> tuple[list[Path], list[Path]]:
    """(the best checkpoint's files, the report and plot files) under ``outputs``."""
    best = sorted(p for p in (outputs / "checkpoints").glob("best*") if p.is_file())
    best += sorted(p for p in (outputs / "checkpoints" / "best").rglob("*") if p.is_file())
    arts = sorted(p for p in (outputs / "artifacts").glob("*") if p.is_file())
    return best, arts + [p for p in (outputs / "summary.json",) if p.is_file()]


class MLflowTracker:
    name = "mlflow"

    def __init__(self) -> None:
        from mlflow.tracking import MlflowClient

        self.client = MlflowClient()
        self.run_id: str | None = None

    @staticmethod
    def key(name: str) -> str:
        return re.sub(r"[^\w./\- :]", "_", name)  # mAP50(B) -> mAP50_B_: MLflow refuses parentheses

    def start(self, spec: dict[str, Any], run_id: str, link: str) -> None:
        from mlflow.entities import Param

        name = f"vtp-{spec.get('framework')}-{spec.get('task')}"
        exp = self.client.get_experiment_by_name(name)
        exp_id = exp.experiment_id if exp else self.client.create_experiment(name)
        run = self.client.create_run(exp_id, run_name=run_id, tags={"vtp.run_id": run_id, "vtp.run_url": link,
                                                                     "mlflow.note.content": f"vtp run {link}"})
        self.run_id = run.info.run_id
        params = [Param(k[:250], v[:6000]) for k, v in flat_params(spec).items()]
        self.client.log_batch(self.run_id, params=params)

    def epoch(self, epoch: int, metrics: dict[str, float]) -> None:
        import time

        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        batch = [Metric(self.key(k), float(v), now, epoch) for k, v in metrics.items()]
        self.client.log_batch(self.run_id or "", metrics=batch)

    def upload(self, outputs: Path, summary: dict[str, Any]) -> None:
        best, arts = _files(outputs, summary)
        for path in best:
            rel = path.relative_to(outputs).parent.as_posix()
            self.client.log_artifact(self.run_id or "", str(path), rel)
        for path in arts:
            self.client.log_artifact(self.run_id or "", str(path), "artifacts")
        self.client.set_tag(self.run_id or "", "vtp.checkpoint_uri", str(summary.get("checkpoint_uri")))

    def close(self, ok: bool) -> None:
        if self.run_id:
            self.client.set_terminated(self.run_id, "FINISHED" if ok else "FAILED")


# Every ClearML auto-integration off: vtp reports what it means to, once. The dict form (not False)
# is what also turns off repository detection, which runs git on the working folder (recording its
# uncommitted diff) and, offline, held Task.close() for minutes.
CLEARML_OFF = {key: False for key in (
    "detect_repository", "matplotlib", "tensorflow", "tensorboard", "pytorch", "xgboost", "scikit", "fastai",
    "lightgbm", "hydra", "tfdefines", "joblib", "megengine", "catboost", "gradio")}


class ClearMLTracker:
    name = "clearml"

    def __init__(self) -> None:
        from clearml import Task

        self.Task = Task
        self.task: Any = None

    def start(self, spec: dict[str, Any], run_id: str, link: str) -> None:
        self.task = self.Task.init(
            project_name=f"vtp/{spec.get('framework')}", task_name=f"{spec.get('model')} {run_id}",
            reuse_last_task_id=False, auto_connect_frameworks=CLEARML_OFF, auto_connect_arg_parser=False,
            auto_resource_monitoring=False, auto_connect_streams=False,
        )
        self.task.connect(flat_params(spec), name="spec")
        self.task.set_comment(f"vtp run {run_id}: {link}")
        self.task.add_tags(["vtp", str(spec.get("framework")), str(spec.get("task"))])

    def epoch(self, epoch: int, metrics: dict[str, float]) -> None:
        logger = self.task.get_logger()
        for k, v in metrics.items():
            title, _, series = k.rpartition("/")
            logger.report_scalar(title or "metrics", series, value=float(v), iteration=epoch)

    def upload(self, outputs: Path, summary: dict[str, Any]) -> None:
        best, arts = _files(outputs, summary)
        folder = outputs / "checkpoints" / "best"
        if folder.is_dir():
            self.task.upload_artifact("checkpoint", artifact_object=folder, wait_on_upload=True)
        elif best:
            self.task.upload_artifact("checkpoint", artifact_object=best[0], wait_on_upload=True)
        for path in arts:
            self.task.upload_artifact(path.name, artifact_object=path, wait_on_upload=True)

    def close(self, ok: bool) -> None:
        if self.task is not None:
            if not ok:
                self.task.mark_failed(status_reason="vtp run failed", force=True)
            self.task.close()
            self.task = None
        # ClearML leaves its task id in the environment; a process started from here later (the
        # zygote's next run, a subprocess) would take itself for part of this task and log nothing.
        for name in ("CLEARML_PROC_MASTER_ID", "TRAINS_PROC_MASTER_ID"):
            os.environ.pop(name, None)


_FACTORIES = {"clearml": ClearMLTracker, "mlflow": MLflowTracker}


class Tracking:
    """The trackers a run uses, subscribed to its callbacks; every call is safe when there are none.

    A tracker that fails logs a warning and is dropped: tracking must never fail a training run."""

    def __init__(self, names: list[str], run_id: str, link: str) -> None:
        self.run_id, self.link = run_id, link
        self.trackers: list[Any] = []
        for name in names:
            if name not in _FACTORIES:
                log.warning("VTP_TRACKERS names %r, which vtp does not know; use %s", name, " and/or ".join(KNOWN))
                continue
            try:
                self.trackers.append(_FACTORIES[name]())
            except ImportError as e:
                log.warning("VTP_TRACKERS asks for %s but it is not installed (%s); not tracking there", name, e)
            except Exception as e:  # misconfigured (bad URI, refused store): reported, never fatal to the run
                log.warning("%s tracking could not start (%s); not tracking there", name, e)

    @classmethod
    def attach(cls, callbacks: Callbacks, trackers: str, run_id: str, link: str) -> Tracking:
        names = [n.strip().lower() for n in trackers.split(",") if n.strip()]
        tracking = cls(names, run_id, link)
        if tracking.trackers:
            callbacks.add("on_train_start", tracking.on_train_start)
            callbacks.add("on_epoch_end", tracking.on_epoch_end)
        return tracking

    def _each(self, what: str, *args: Any) -> None:
        for tracker in list(self.trackers):
            try:
                getattr(tracker, what)(*args)
            except Exception as e:  # reported and dropped, never fatal to the run
                log.warning("%s tracking failed in %s (%s); it is off for the rest of this run", tracker.name, what, e)
                self.trackers.remove(tracker)

    def on_train_start(self, epochs: int, spec: Any = None, **_: Any) -> None:  # noqa: ARG002
        data = spec.model_dump(mode="json") if hasattr(spec, "model_dump") else dict(spec or {})
        self._each("start", data, self.run_id, self.link)

    def on_epoch_end(self, epoch: int, epochs: int, metrics: dict[str, float]) -> None:  # noqa: ARG002
        self._each("epoch", epoch, metrics)

    def after_upload(self, outputs: Path, summary: dict[str, Any]) -> None:
        self._each("upload", outputs, summary)

    def close(self, ok: bool) -> None:
        self._each("close", ok)
