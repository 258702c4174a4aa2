"""Ultralytics YOLO trainer plugin: ``train(spec, ctx) -> TrainResult``.

Detect, segment, classify, pose and obb for the YOLO11, YOLOv8 and YOLO26 families. ultralytics is
imported inside :func:`train`, after :mod:`.env` has pointed its settings away from the user's own
and made it offline-safe; importing this package stays cheap.

The entry points every plugin has: :func:`train`, :data:`CHECKPOINT`, :func:`load_predictor` /
:func:`predict_images` (records of :mod:`trainers.common.predict`), :func:`load_for_export` and
:func:`export_model`. Every checkpoint they read is checked first (:mod:`.checkpoint`).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.contracts import TrainContext, TrainResult
from core.devices import parse_devices
from core.errors import ResumeCheckpointError, TrainerError, gpu_out_of_memory
from trainers.common import resolve_device as common_resolve_device
from trainers.common.distributed import check_gpus
from trainers.ultralytics import ddp, env
from trainers.ultralytics.hooks import RunState, attach, forward_logs
from trainers.ultralytics.report import write_per_class
from trainers.ultralytics.weights import find_yolo_weights

if TYPE_CHECKING:
    from core.spec import TrainSpec

RUN_NAME = "train"
CHECKPOINT = "checkpoints/best.pt"  # the run's published checkpoint (ultralytics' weights/best.pt)
ARTIFACT_PATTERNS = ("results.csv", "args.yaml", "*.png", "*.jpg")


def preload() -> None:
    """For the warm launcher (cli/zygote.py): import ultralytics once, before runs are forked."""
    env.import_ultralytics()


def train(spec: TrainSpec, ctx: TrainContext) -> TrainResult:
    """Train ``spec.model`` on ``ctx.dataset`` inside ``ctx.workdir/train``; see the module doc."""
    data = _data_arg(spec, ctx)
    ctx.workdir.mkdir(parents=True, exist_ok=True)
    env.import_ultralytics()
    devices = parse_devices(spec.devices) if spec.devices else None  # several GPUs (TrainSpec: CUDA only)
    if devices is not None:
        check_gpus(devices, spec)
        device, on_cuda, notes = str(devices), True, [ddp.ddp_note(devices)]
    else:
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
        if devices is None:
            attach(model, ctx.callbacks, state)
        with env.amp_check_guard(ctx, on_cuda, bool(args.get("amp", True))) as amp_note:
            if amp_note:
                notes.append(amp_note)
            for line in notes:
                ctx.callbacks.log(line)
            if devices is None:
                _run(model, args, spec)
            else:
                _run_ddp(model, args, spec, ctx, state, notes)
    return _result(model, state, pretrained_used, notes, spec)


def resolve_device(device: str) -> tuple[str, bool, str | None]:
    """TrainSpec's device -> (ultralytics' device: ``0``, ``cpu`` or ``mps``; uses CUDA; note), by
    :func:`trainers.common.resolve_device` (one device: DDP would run the trainer in subprocesses,
    out of reach of vtp's callbacks)."""
    resolved, note = common_resolve_device(device)
    if resolved.type == "cuda":
        return str(resolved.index or 0), True, note
    return resolved.type, False, note


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
    if spec.accumulate is not None:
        # ultralytics accumulates gradients up to a nominal batch of `nbs` images (default 64): steps
        # every max(round(nbs / batch), 1) batches, weight decay scaled to it
        args["nbs"] = spec.batch_size * spec.accumulate
        notes.append(f"gradient accumulation: {spec.accumulate} batches of {spec.batch_size} = "
                     f"{args['nbs']} images per optimizer step (ultralytics nbs={args['nbs']})")
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



def _run_ddp(model: Any, args: dict[str, Any], spec: TrainSpec, ctx: TrainContext, state: RunState,
             notes: list[str]) -> None:
    """``YOLO.train`` on several GPUs, followed by :class:`trainers.ultralytics.ddp.Relay`."""
    import subprocess

    relay = ddp.Relay(ctx.workdir / RUN_NAME, spec.epochs, ctx.callbacks, state)
    try:
        with relay:
            _run(model, args, spec)
    except subprocess.CalledProcessError as e:
        if not relay.stop_requested:
            raise TrainerError(f"ultralytics' DDP workers failed (exit code {e.returncode}): see the run's log") from e
    if relay.stop_requested:
        notes.append(f"stopped on request after epoch {state.epochs_completed} of {spec.epochs}.")
    # the epoch with the best main metric, as best.pt is (ultralytics' fitness weighs mAP50-95 most)
    state.final_metrics = relay.best(spec.main_metric)


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


def load_predictor(checkpoint: Path | str, *, name: str | None = None, device: str = "cpu",
                   task: str | None = None) -> Any:
    """A predictor for the YOLO checkpoint (see :mod:`trainers.common.predict`), or for one of its
    exports (an ``.onnx``/``.torchscript`` file or an ``_openvino_model``/``_ncnn_model`` folder, loaded by
    ultralytics' AutoBackend; ``task`` then says what it predicts): called with images (PIL images or
    file paths), ``conf`` (0-1, default 0.25: objects below it are left out), ``image_size`` (pixels,
    default the checkpoint's own) and ``draw`` (default True), it returns one record per image, drawn by
    ultralytics (masks and keypoints too) when ``draw``. Several images go to ultralytics in one call
    (one batch for a PyTorch model or a dynamic export). A ``.pt`` checkpoint is checked first
    (weights_only, like every ultralytics load in vtp): :class:`~.checkpoint.UnsafeCheckpoint` (a
    TrainerError, calling the file ``name``) when vtp does not load it."""
    from PIL import Image

    from trainers.ultralytics.checkpoint import check_checkpoint

    if Path(checkpoint).suffix == ".pt":
        check_checkpoint(checkpoint, name=name)
    YOLO = env.import_ultralytics().YOLO
    model = YOLO(str(checkpoint), task=task) if task else YOLO(str(checkpoint))

    def predictor(images: list[Any], conf: float = 0.25, image_size: int | None = None, top_k: int = 5,
                  draw: bool = True, **_: Any) -> list[dict[str, Any]]:
        from trainers.common.images import image_scale
        from trainers.common.predict import open_rgb

        kwargs: dict[str, Any] = {"device": device, "conf": conf, "verbose": False}
        if image_size:
            kwargs["imgsz"] = int(image_size)
        if not images:
            return []
        results = model.predict([open_rgb(image, image_scale(image)) for image in images], **kwargs)
        return [{"task": str(model.task), "predictions": _records(result, top_k),
                 "plot": Image.fromarray(result.plot()[..., ::-1]) if draw else None}  # BGR -> RGB
                for result in results]

    return predictor


def _records(result: Any, top_k: int) -> list[dict[str, Any]]:
    names = result.names
    if result.probs is not None:
        order = result.probs.data.float().argsort(descending=True)[:top_k].tolist()
        return [{"class": names[int(i)], "confidence": float(result.probs.data[int(i)])} for i in order]
    boxes = result.boxes if result.boxes is not None else result.obb
    if boxes is None:
        return []
    xyxy = boxes.xyxy.tolist() if hasattr(boxes, "xyxy") else [[] for _ in boxes.cls]
    return [{"class": names[int(c)], "confidence": float(s), "box": b}
            for c, s, b in zip(boxes.cls.tolist(), boxes.conf.tolist(), xyxy, strict=True)]


def predict_images(checkpoint: Path | str, images: list[Any], **options: Any) -> list[dict[str, Any]]:
    """One record per image (see :func:`load_predictor` for the options)."""
    return load_predictor(checkpoint)(images, **options)


def load_for_export(checkpoint: Path | str) -> tuple[Any, bool]:
    """Not offered: ultralytics exports through its own exporter (:func:`export_model`)."""
    raise TrainerError("ultralytics checkpoints are exported by ultralytics' own exporter: use export_model")


EXPORT_FORMATS = ("onnx", "torchscript", "openvino", "ncnn")  # what ultralytics' exporter does on a CPU here
EXPORT_OPTIONS = ("half", "int8", "dynamic")


def export_model(checkpoint: Path | str, fmt: str, image_size: int, out: Path, *, data: Path | str | None = None,
                 **options: Any) -> Path:
    """Write the checkpoint as ``fmt`` (:data:`EXPORT_FORMATS`) for ``image_size``-pixel images to
    ``out`` (a file; a folder for openvino and ncnn, whose name ends as ultralytics names it:
    ``_openvino_model``, ``_ncnn_model``), with ultralytics' exporter on the CPU. ``options``:
    ``half``, ``int8`` (calibrated on ``data``: the dataset's data.yaml, or its folder for
    classification), ``dynamic``. The checkpoint is checked first (weights_only, or
    :class:`~.checkpoint.UnsafeCheckpoint` with the reason). TrainerError when the exporter fails,
    with its words."""
    import shutil

    from trainers.common.export import check_format
    from trainers.ultralytics.checkpoint import check_checkpoint

    check_format(fmt, EXPORT_FORMATS)
    if unknown := sorted(set(options) - set(EXPORT_OPTIONS)):
        raise TrainerError(f"export options {', '.join(unknown)} are not ultralytics': use {', '.join(EXPORT_OPTIONS)}")
    args = {k: bool(v) for k, v in options.items() if v}
    if args.get("int8"):
        if data is None:
            raise TrainerError("an int8 export is calibrated on the dataset's images: give the dataset (data)")
        args["data"] = str(data)
    check_checkpoint(checkpoint)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    work = out.parent / f".ultralytics-{out.name}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    try:
        local = work / Path(checkpoint).name
        shutil.copyfile(checkpoint, local)  # the exporter writes beside its input
        try:
            made = Path(env.import_ultralytics().YOLO(str(local)).export(format=fmt, imgsz=image_size, device="cpu",
                                                                         verbose=False, **args))
        except (ImportError, ModuleNotFoundError) as e:
            raise TrainerError(f"ultralytics' {fmt} exporter needs a package this install lacks ({e}); it is not "
                               "downloaded at run time (YOLO_AUTOINSTALL is off)") from e
        except Exception as e:  # noqa: BLE001 - the exporter's own words are the reason
            raise TrainerError(f"ultralytics' {fmt} export failed: {type(e).__name__}: {str(e)[:300]}") from e
        if out.exists():
            shutil.rmtree(out) if out.is_dir() else out.unlink()
        shutil.move(made, out)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return out


_REFERENCE: dict[tuple[Any, ...], float] = {}  # check_export: the checkpoint's metric, for its other formats


def check_export(checkpoint: Path | str, exported: Path, fmt: str, data: Path | str, image_size: int,
                 task: str = "detect", main_metric: str = "metrics/mAP50-95(B)") -> dict[str, Any]:
    """The export at ``exported`` against the checkpoint: ``main_metric`` measured by ultralytics'
    own validator for both on the dataset's val split (``data``: data.yaml, or the folder for
    classification), the drop, the largest absolute difference of the raw outputs on one val image
    (ultralytics' AutoBackend runs either), and latency (ultralytics' own inference time, ms, p50 of
    10 single-image predictions after a warm-up)."""
    import statistics

    import numpy as np
    import torch

    YOLO = env.import_ultralytics().YOLO
    from ultralytics.nn.autobackend import AutoBackend

    common = {"data": str(data), "imgsz": image_size, "device": "cpu", "plots": False, "verbose": False,
              "batch": 1, "workers": 0}

    def measure(weights: str) -> float:
        metrics = YOLO(weights, task=task).val(**common)
        return float(metrics.results_dict[main_metric])

    # the checkpoint's own metric is measured once for all the formats of one export request
    stat = Path(checkpoint).stat()
    key = (str(checkpoint), stat.st_mtime_ns, stat.st_size, str(data), image_size, task, main_metric)
    try:
        if key not in _REFERENCE:
            _REFERENCE.clear()  # one checkpoint at a time: the cache never grows
            _REFERENCE[key] = measure(str(checkpoint))
        reference = _REFERENCE[key]
        value = measure(str(exported))
    except Exception as e:  # noqa: BLE001 - the runtime's or validator's words are the reason
        raise TrainerError(f"the {fmt} export could not be validated: {type(e).__name__}: {str(e)[:300]}") from e
    sample = torch.rand(1, 3, image_size, image_size, generator=torch.Generator().manual_seed(0))
    diff = None
    try:
        outs = [AutoBackend(w, device=torch.device("cpu"), verbose=False)(sample) for w in (str(checkpoint), str(exported))]
        flat = [np.concatenate([np.asarray(t.detach() if hasattr(t, "detach") else t, np.float32).ravel()
                                for t in (o if isinstance(o, list | tuple) else [o]) if hasattr(t, "shape")]) for o in outs]
        if flat[0].shape == flat[1].shape:
            diff = float(np.abs(flat[0] - flat[1]).max())
    except Exception:  # noqa: BLE001, S110 - the metric above is the check; the raw difference is extra
        diff = None
    model = YOLO(str(exported), task=task)
    image = np.zeros((image_size, image_size, 3), np.uint8)
    model.predict(image, imgsz=image_size, device="cpu", verbose=False)
    times = [model.predict(image, imgsz=image_size, device="cpu", verbose=False)[0].speed["inference"]
             for _ in range(10)]
    return {"metric": main_metric, "value": value, "reference": reference, "drop": reference - value,
            "max_abs_diff": diff, "latency_ms_p50": float(statistics.median(times))}
