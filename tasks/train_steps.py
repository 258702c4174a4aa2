"""The steps of a training run as Prefect tasks. Each is a plain function underneath (``step.fn``),
so tests call the work directly; retries are declared here, on the task, not in the flow."""

from __future__ import annotations

import contextlib
import json
import logging
import shutil
import time
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

from prefect import task
from prefect.cache_policies import NONE
from prefect.tasks import exponential_backoff

from core.contracts import Callbacks, DatasetInfo, TrainContext, TrainResult
from core.errors import DatasetError, SpecError, TrainerError
from core.settings import Settings
from core.spec import TrainSpec
from tasks import dataset_store, resume
from tasks.storage import Storage, upload_folder


def transient_only(task, task_run, state) -> bool:  # noqa: ARG001 - Prefect's retry_condition_fn signature
    """Retry storage trouble (network, 5xx, timeouts); never a problem with the person's input."""
    exc = state.data if isinstance(state.data, BaseException) else None
    return not isinstance(exc, (DatasetError, SpecError, FileNotFoundError, PermissionError))


STORAGE_RETRIES = dict(retries=3, retry_delay_seconds=exponential_backoff(backoff_factor=1),
                       retry_jitter_factor=0.5, retry_condition_fn=transient_only)


@task(name="download-dataset", cache_policy=NONE, **STORAGE_RETRIES)
def download_dataset(spec: TrainSpec, settings: Settings) -> tuple[Path, dataset_store.CacheStats, dataset_store.DatasetRecord]:
    """Resolve the dataset name or URI and materialise it locally, through the content cache."""
    return dataset_store.download(Storage(settings=settings), spec.dataset, settings.cache_root)


@task(name="validate-dataset", cache_policy=NONE)
def validate_dataset(local: Path, spec: TrainSpec, workdir: Path,
                     auto_split: dict[str, Any] | None = None) -> tuple[DatasetInfo, dict[str, Any]]:
    """Check the dataset before any training; fatal problems stop the run with each file named.

    ``auto_split``: the record of the val split vtp made when the dataset version was imported
    (None: the dataset brought its own, or it is a storage URI). The returned report's
    ``run_notes`` say what this run's view of the dataset changed: a val split made or made again
    (``spec.val_fraction``), classes left out (``spec.classes``), 16-bit images scaled for a trainer
    that reads only 8-bit ones; the flow adds them to the run's notes."""
    from tasks import splits
    from tasks.dataset_formats import detect_format, normalize, prepare_local
    from tasks.validation import validate

    # a dataset registered where it is (a storage URI) may still be COCO, another tool's export or lack
    # a val split: converted and split here as an import would (imported datasets pass through unchanged)
    notes: list[str] = []
    local, _, _, made = normalize(local, spec.task, workdir / "dataset-normalized", notes, val_fraction=spec.val_fraction)
    if spec.val_fraction is not None and made is None:
        if auto_split and auto_split.get("val_fraction") != spec.val_fraction:
            local, made = splits.resplit(local, detect_format(local), workdir / "dataset-resplit", spec.val_fraction)
            notes.append(f"val_fraction={spec.val_fraction}: the val split vtp made at import (val_fraction "
                         f"{auto_split.get('val_fraction')}) was made again: {made['val']} of "
                         f"{made['train'] + made['val']} images in val, seed {made['seed']}, stratified by "
                         f"{made['stratified_by']}")
        elif not auto_split:
            notes.append(f"val_fraction={spec.val_fraction} was not used: dataset {spec.dataset} has its own "
                         "validation split, which is kept")
    report = validate(local, spec.task or "")
    report.raise_if_fatal()
    # ultralytics reads 16-bit images keeping only their high byte: its view holds 8-bit copies
    info = prepare_local(local, spec.task or "", workdir, classes=spec.classes,
                         eight_bit=spec.framework == "ultralytics", notes=notes)
    for note in notes:
        logging.getLogger("vtp").warning("dataset %s: %s", spec.dataset, note)
    return info, {**report.to_dict(), "run_notes": notes}


def auto_split_of(record: dataset_store.DatasetRecord, settings: Settings) -> dict[str, Any] | None:
    """The record of the val split vtp made when ``record``'s version was imported, or None (it came
    with its own, or the version has no stored report)."""
    try:
        report = dataset_store.read_report(Storage(settings=settings), record)
    except Exception as e:  # noqa: BLE001 - a missing or unreadable report: the split is taken as the dataset's own
        logging.getLogger("vtp").warning("dataset %s: its import report could not be read (%s)", record.ref, e)
        return None
    return (report or {}).get("auto_split")


@task(name="fetch-checkpoints", cache_policy=NONE, **STORAGE_RETRIES)
def fetch_checkpoints(spec: TrainSpec, run_id: str, workdir: Path,
                      settings: Settings) -> tuple[resume.ResumePoint | None, Path | None]:
    """This run's last uploaded resumable checkpoint (it crashed before and is being retried), and
    the final checkpoint of the run it extends (``spec.extends``), each downloaded into the workdir."""
    storage = Storage(settings=settings)
    point = resume.fetch(storage, run_id, workdir / "resume") if _resumable(spec) else None
    if point is not None and point.epochs != spec.epochs:
        point = None  # the same run id with another spec: start over rather than mix the two
    init_from = resume.fetch_finished(storage, spec, workdir / "init") if spec.extends else None
    return point, init_from


@task(name="fetch-older-checkpoint", cache_policy=NONE, **STORAGE_RETRIES)
def fetch_resume_before(spec: TrainSpec, run_id: str, epoch: int, workdir: Path,
                        settings: Settings) -> resume.ResumePoint | None:
    """The newest complete resumable checkpoint older than ``epoch`` (the one after it would not
    load), or None: then the run starts over."""
    point = resume.fetch(Storage(settings=settings), run_id, workdir / "resume", before=epoch)
    return point if point is not None and point.epochs == spec.epochs else None


def _resumable(spec: TrainSpec) -> bool:
    """The framework's capabilities say its trainer resumes mid-run (``"resume": true``)."""
    from core.frameworks import capabilities

    return bool(capabilities(spec.framework or "").resume) if spec.framework else False


def resume_uploader(callbacks: Callbacks, run_id: str, workdir: Path, settings: Settings,
                    spec: TrainSpec, *, attempt: int = 1, fenced: Any = None) -> resume.ResumeUploader | None:
    """Uploads resumable checkpoints as they are saved; None when the framework cannot resume
    (its capabilities say so: a retry after a crash starts over) or checkpointing is off."""
    if not _resumable(spec):
        return None
    return resume.ResumeUploader.attach(callbacks, Storage(settings=settings), run_id, workdir / "resume-staging",
                                        settings.checkpoint_every, framework=spec.framework or "",
                                        attempt=attempt, fenced=fenced)


def clear_resume_state(run_id: str, settings: Settings) -> None:
    try:
        resume.clear(Storage(settings=settings), run_id)
    except Exception as e:  # noqa: BLE001 - the run is complete; a leftover resume folder is only clutter
        logging.getLogger("vtp").warning("could not remove the resumable checkpoint of run %s: %s", run_id, e)


@contextlib.contextmanager
def pool_slot(spec: TrainSpec, settings: Settings, callbacks: Callbacks, logger: Any) -> Iterator[None]:
    """Hold the pool's training slots a run needs (a Prefect global concurrency limit, VTP_POOL_SLOTS:
    one per device, ``spec.device_count``) while training; waits, heartbeating, while too few are free.
    TrainerError when the run needs more slots than the pool has at all."""
    if settings.pool_slots <= 0:
        yield
        return
    from prefect.concurrency.sync import concurrency

    name = slot_limit_name(settings.pool_name(spec.framework or ""))
    need = spec.device_count
    if need > settings.pool_slots:
        raise TrainerError(f"devices={spec.devices!r} needs {need} training slots but the work pool "
                           f"{settings.pool_name(spec.framework or '')} has {settings.pool_slots} (VTP_POOL_SLOTS): "
                           f"use at most {settings.pool_slots} devices, or raise VTP_POOL_SLOTS")
    with contextlib.ExitStack() as held:
        waited = False
        while True:
            try:  # only the acquisition may time out; training's own errors pass through untouched
                held.enter_context(concurrency(name, occupy=need, timeout_seconds=10, strict=True))
                break
            except TimeoutError:
                if not waited:
                    logger.info("all training slots of %s are taken; waiting for one", name)
                waited = True
                callbacks.heartbeat(force=True)
        if waited:
            logger.info("got a training slot of %s", name)
        yield


def slot_limit_name(pool: str) -> str:
    return f"vtp-slots-{pool}"


@task(name="train", cache_policy=NONE)
def run_trainer(spec: TrainSpec, info: DatasetInfo, workdir: Path, callbacks: Callbacks,
                settings: Settings, resume_from: Path | None = None, init_from: Path | None = None) -> TrainResult:
    from core.frameworks import get_trainer

    ctx = TrainContext(
        workdir=workdir / "train", dataset=info, callbacks=callbacks,
        weights_dir=settings.weights_dir, download_timeout_s=settings.download_timeout_s,
        resume_from=resume_from, init_from=init_from,
    )
    ctx.workdir.mkdir(parents=True, exist_ok=True)
    callbacks.train_start(epochs=spec.epochs, spec=spec)
    result = get_trainer(spec.framework or "")(spec, ctx)
    callbacks.train_end(result)
    return result


def collect_outputs(result: TrainResult, out: Path) -> dict[str, str]:
    """Lay the trainer's outputs out as ``checkpoints/`` and ``artifacts/`` (copies, so the
    trainer's folder can be removed independently); returns relative path -> role."""
    out.mkdir(parents=True, exist_ok=True)
    layout: dict[str, str] = {}
    for role, src in (("best", result.best_checkpoint), ("last", result.last_checkpoint)):
        if src and Path(src).is_dir():  # a save_pretrained folder: checkpoints/<role>/...
            shutil.copytree(src, out / "checkpoints" / role, dirs_exist_ok=True)
            layout[f"checkpoints/{role}"] = role
            for f in sorted(p for p in (out / "checkpoints" / role).rglob("*") if p.is_file()):
                layout[f.relative_to(out).as_posix()] = f"{role}-file"
        elif src and Path(src).exists():
            rel = f"checkpoints/{role}{Path(src).suffix or '.pt'}"
            (out / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, out / rel)
            layout[rel] = role
    for src in result.artifacts:
        src = Path(src)
        if src.is_file():
            rel = f"artifacts/{src.name}"
            (out / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, out / rel)
            layout[rel] = "artifact"
    if "checkpoints/best.pt" not in layout and not any(v == "best" for v in layout.values()):
        raise RuntimeError("the trainer returned no checkpoint; nothing to upload")
    return layout


@task(name="export-checkpoint", cache_policy=NONE)
def export_outputs(spec: TrainSpec, outputs: Path, layout: dict[str, str], run_id: str,
                   info: DatasetInfo | None = None) -> list[str]:
    """Export the best checkpoint in ``outputs`` to each of ``spec.export`` (TrainSpec.export) as
    ``exports/model<suffix>`` (:func:`tasks.export.export_rel`), check each on the run's dataset
    ``info`` (:func:`tasks.export.export_and_check`), write the table as ``exports/report.json``,
    all listed in ``layout`` (role ``export``) before the outputs are uploaded. Returns a note per
    format: what was exported and how it compares with PyTorch, or why not. An export that fails
    does not fail the run: the checkpoint is whole, and the note says how to try again."""
    from tasks.export import REPORT, describe_row, export_and_check, merge_report, plugin

    data = (Path(info.data_yaml) if info.data_yaml else Path(info.root)) if info is not None else None
    spec_json = spec.model_dump(mode="json")
    checkpoint = outputs / plugin(spec.framework or "").CHECKPOINT
    notes: list[str] = []
    rows = []
    for fmt in spec.export:
        row = export_and_check(spec_json, checkpoint, fmt, outputs, data)
        rows.append(row)
        if row.get("size_mb") is None:
            notes.append(f"export to {fmt} failed ({row['error'][:300]}); the checkpoint is not affected. Try again "
                         f"with `vtp export {run_id} --format {fmt}`.")
            continue
        made = outputs / row["path"]
        for f in [made] if made.is_file() else sorted(p for p in made.rglob("*") if p.is_file()):
            layout[f.relative_to(outputs).as_posix()] = "export"
        notes.append(f"exported the best checkpoint: {describe_row(row)}")
    if rows:
        (outputs / REPORT).parent.mkdir(parents=True, exist_ok=True)
        (outputs / REPORT).write_text(json.dumps(merge_report(None, rows), indent=2))
        layout[REPORT] = "export"
    for note in notes:
        logging.getLogger("vtp").info("%s", note)
    return notes


@task(name="upload-outputs", cache_policy=NONE, **STORAGE_RETRIES)
def upload_outputs(run_id: str, outputs: Path, summary: dict[str, Any], settings: Settings) -> str:
    """Upload checkpoints, artifacts and summary.json; the manifest is written last."""
    storage = Storage(settings=settings)
    (outputs / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    result = upload_folder(storage, outputs, "runs", run_id, run_id=run_id)
    return result.uri


def make_summary(run_id: str, spec: TrainSpec, result: TrainResult, record: dataset_store.DatasetRecord,
                 stats: dataset_store.CacheStats, storage_uri: str, layout: dict[str, str],
                 started: float) -> dict[str, Any]:
    best = next((rel for rel, role in layout.items() if role == "best"), None)
    return {
        "run_id": run_id,
        "state": "completed",
        "spec": spec.model_dump(mode="json"),
        "metrics": result.metrics,
        "main_metric": {"name": spec.main_metric, "value": result.metrics.get(spec.main_metric)},
        "epochs_completed": result.epochs_completed,
        "stopped_early": result.stopped_early,
        "pretrained_used": result.pretrained_used,
        "notes": result.notes,
        # the exact version trained on: `dataset=<ref>` trains on the same files again
        "dataset": {"name": record.name, "uri": record.uri, "version": record.version, "hash": record.hash,
                    "ref": record.ref if record.version else spec.dataset},
        "num_classes": len(record.classes or []) or None,
        "dataset_cache": asdict(stats),
        "run_uri": f"{storage_uri}/runs/{run_id}",
        "checkpoint_uri": f"{storage_uri}/runs/{run_id}/{best}" if best else None,
        "files": sorted(layout),
        "duration_s": round(time.time() - started, 2),
    }


def remove_workdir(workdir: Path) -> None:
    """Remove a work folder; its parent too when that is an emptied run folder (work/<run>/attempt-N)."""
    shutil.rmtree(workdir, ignore_errors=True)
    if workdir.name.startswith("attempt-"):
        with contextlib.suppress(OSError):
            workdir.parent.rmdir()  # only when empty: another attempt's folder stays
