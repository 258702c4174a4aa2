"""Ultralytics YOLO trainer plugin: ``train(spec, ctx) -> TrainResult``.

Detect, segment, classify, pose and obb for the YOLO11, YOLOv8 and YOLO26 families. ultralytics is
imported inside :func:`train`, after :mod:`.env` has pointed its settings away from the user's own
and made it offline-safe; importing this package stays cheap.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.contracts import TrainContext, TrainResult
from core.errors import ResumeCheckpointError, TrainerError, gpu_out_of_memory
from trainers.ultralytics import env
from trainers.ultralytics.hooks import RunState, attach, forward_logs
from trainers.ultralytics.report import write_per_class
from trainers.ultralytics.weights import find_yolo_weights

if TYPE_CHECKING:
    from core.spec import TrainSpec

RUN_NAME = "train"
ARTIFACT_PATTERNS = ("results.csv", "args.yaml", "*.png", "*.jpg")


def train(spec: TrainSpec, ctx: TrainContext) -> TrainResult:
    """Train ``spec.model`` on ``ctx.dataset`` inside ``ctx.workdir/train``; see the module doc."""
    data = _data_arg(spec, ctx)
    ctx.workdir.mkdir(parents=True, exist_ok=True)
    env.import_ultralytics()
    device, on_cuda, device_note = resolve_device(spec.device)
    notes = [device_note] if device_note else []
    state = RunState()
    with forward_logs(ctx.callbacks):
        if ctx.resume_from:
            model, args, note = _resume(spec, ctx, data, device)
            pretrained_used = False
            notes.append(note)
        else:
            model, pretrained_used, note = _load_model(spec, ctx)
            notes.append(note)
            args, arg_notes = build_args(spec, ctx, data, device)
            notes.extend(arg_notes)
        attach(model, ctx.callbacks, state)
        with env.amp_check_guard(ctx, on_cuda, bool(args.get("amp", True))) as amp_note:
            if amp_note:
                notes.append(amp_note)
            for line in notes:
                ctx.callbacks.log(line)
            _run(model, args, spec)
    return _result(model, state, pretrained_used, notes, spec)


def resolve_device(device: str) -> tuple[str, bool, str | None]:
    """TrainSpec's device -> (ultralytics device, uses CUDA, note). One device only: DDP would
    run the trainer in subprocesses, out of reach of vtp's callbacks."""
    import torch

    cuda = torch.cuda.is_available()
    if device == "auto":
        return ("0" if cuda else "cpu"), cuda, None
    if device in ("cpu", "mps"):
        return device, False, None
    index = device.removeprefix("cuda").lstrip(":") or "0"
    note = None
    if "," in index:
        index = index.split(",")[0]
        note = f"device={device!r}: vtp trains on one GPU per run; using GPU {index}."
    if not cuda:
        raise TrainerError(
            f"device={device!r} asks for a CUDA GPU but none is visible here: use device='auto' or 'cpu'"
        )
    if int(index) >= torch.cuda.device_count():
        raise TrainerError(
            f"device={device!r} names GPU {index} but only {torch.cuda.device_count()} are visible: "
            f"use 0 to {torch.cuda.device_count() - 1} or 'auto'"
        )
    return index, True, note


def build_args(
    spec: TrainSpec, ctx: TrainContext, data: str, device: str
) -> tuple[dict[str, Any], list[str]]:
    """TrainSpec -> keyword arguments of ``YOLO.train``; overrides (checked by TrainSpec) go last."""
    args: dict[str, Any] = {
        "data": data,
        "epochs": spec.epochs,
        "imgsz": spec.image_size,
        "batch": spec.batch_size,
        "device": device,
        "seed": spec.seed,
        "patience": spec.patience,  # 0 = off, as in ultralytics
        "workers": spec.workers,
        "project": str(ctx.workdir.resolve()),  # absolute, else ultralytics nests it under its runs dir
        "name": RUN_NAME,
        "exist_ok": True,
        "pretrained": spec.pretrained,
        "verbose": True,
    }
    notes = []
    if spec.learning_rate is not None:
        args["lr0"] = spec.learning_rate
        if "optimizer" not in spec.overrides:
            # optimizer='auto' (the default) ignores lr0 and picks its own learning rate
            args["optimizer"] = "AdamW"
            notes.append(
                f"learning_rate={spec.learning_rate:g} is used with the AdamW optimizer "
                "(ultralytics' automatic optimizer would ignore it); set overrides.optimizer to choose another."
            )
    args.update(spec.overrides)
    return args, notes


def _data_arg(spec: TrainSpec, ctx: TrainContext) -> str:
    ds = ctx.dataset
    if spec.task == "classify":
        if not (Path(ds.root) / "train").is_dir():
            raise TrainerError(
                f"classification data must be an image folder with train/ and val/ class folders; "
                f"{ds.root} has no train/ folder"
            )
        return str(Path(ds.root).resolve())
    if ds.data_yaml is None or not Path(ds.data_yaml).is_file():
        raise TrainerError(
            f"{spec.task} training needs a YOLO-format dataset with a data.yaml, but dataset at {ds.root} "
            f"({ds.format}) has none: prepare it with tasks.dataset_formats.prepare_local"
        )
    return str(Path(ds.data_yaml).resolve())


def _resume(spec: TrainSpec, ctx: TrainContext, data: str, device: str) -> tuple[Any, dict[str, Any], str]:
    """Go on from this run's last uploaded checkpoint (a copy of ultralytics' run folder: weights/,
    results.csv, ...) with ultralytics' own resume: weights, EMA, optimizer, epoch and best fitness
    come from last.pt, and results.csv goes on with the next epoch."""
    import shutil

    from ultralytics import YOLO

    run_dir = (ctx.workdir / RUN_NAME).resolve()
    shutil.copytree(ctx.resume_from, run_dir, dirs_exist_ok=True)
    last = run_dir / "weights" / "last.pt"
    try:
        model = YOLO(str(last), task=spec.task)
        epoch = int(model.ckpt.get("epoch", -1)) + 1
    except Exception as e:
        raise ResumeCheckpointError(f"the run's resume checkpoint could not be loaded ({e})") from e
    # Only what ultralytics lets a resume change: where the data and outputs live, the device, workers.
    args = {"resume": True, "data": data, "device": device, "workers": spec.workers, "save_dir": str(run_dir),
            "batch": spec.batch_size, "patience": spec.patience}
    if spec.image_size:
        args["imgsz"] = spec.image_size
    return model, args, (f"resumed after epoch {epoch} of {spec.epochs} from the run's last uploaded checkpoint "
                         "(weights, EMA, optimizer and best fitness restored).")


def _load_model(spec: TrainSpec, ctx: TrainContext) -> tuple[Any, bool, str]:
    from ultralytics import YOLO

    if ctx.init_from:
        path = Path(ctx.init_from)
        path = path / "last.pt" if path.is_dir() else path
        try:
            model = YOLO(str(path), task=spec.task)
        except Exception as e:
            raise TrainerError(f"the checkpoint of the run being continued could not be loaded ({e})") from e
        return model, True, "starting from the final weights of the run being continued."
    scratch = f"{spec.model}.yaml"  # ships inside ultralytics: building from it downloads nothing
    if not spec.pretrained:
        return YOLO(scratch, task=spec.task), False, f"training {spec.model} from scratch (pretrained=False)."
    path, note = find_yolo_weights(str(spec.model), ctx)
    if path is None:
        return YOLO(scratch, task=spec.task), False, note
    try:
        return YOLO(str(path), task=spec.task), True, note
    except Exception as e:
        raise TrainerError(
            f"the weights file {path} could not be loaded as {spec.model} ({e}): replace it, or set pretrained=False"
        ) from e


def _run(model: Any, args: dict[str, Any], spec: TrainSpec) -> None:
    import torch

    try:
        model.train(**args)
    except torch.cuda.OutOfMemoryError as e:
        raise gpu_out_of_memory(spec) from e
    except RuntimeError as e:
        if "out of memory" in str(e).lower():
            raise gpu_out_of_memory(spec) from e
        raise
    except FileNotFoundError as e:
        raise TrainerError(f"ultralytics could not find a file it needs: {e}") from e



def _result(
    model: Any, state: RunState, pretrained_used: bool, notes: list[str], spec: TrainSpec
) -> TrainResult:
    trainer = model.trainer
    run_dir = Path(trainer.save_dir)
    best, last = Path(trainer.best), Path(trainer.last)
    if not last.is_file():
        raise TrainerError(f"training ended without writing {last}; see the run's log for the cause")
    if not best.is_file():
        best = last
    artifacts: list[Path] = []
    for pattern in ARTIFACT_PATTERNS:
        artifacts.extend(sorted(p for p in run_dir.glob(pattern) if p.is_file()))
    per_class = write_per_class(trainer, spec.task or "detect", run_dir)  # the rest of the report is ultralytics' plots
    if per_class is not None:
        artifacts.append(per_class)
    metrics = state.final_metrics if state.final_metrics else state.last_metrics
    if not state.stopped_early and state.epochs_completed < spec.epochs:
        notes.append(
            f"early stopping after {state.epochs_completed} of {spec.epochs} epochs: no improvement in the last "
            f"{spec.patience} epochs (patience)."
        )
    return TrainResult(
        metrics=dict(metrics),
        best_checkpoint=best,
        last_checkpoint=last,
        artifacts=artifacts,
        epochs_completed=state.epochs_completed,
        pretrained_used=pretrained_used,
        notes=notes,
        stopped_early=state.stopped_early or state.epochs_completed < spec.epochs,
    )
