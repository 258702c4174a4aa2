"""timm checkpoints: written atomically, loaded back into a model that predicts.

A checkpoint is a plain dict of tensors and basic values, so ``torch.load(weights_only=True)`` reads
it: {"model", "optimizer", "scheduler", "epoch", "spec", "classes", "pretrained_cfg", "data_config",
"metrics", "timm_version", "resume"}. ``last.pt`` holds all of it (a retried run resumes from it);
``best.pt`` is published: it holds the weights and what loading them needs, without the optimizer,
scheduler and resume state (:data:`TRAINING_STATE`; for resnet18 the optimizer alone was ~90 of
128 MB).
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import torch
from torch import nn

from core.errors import TrainerError
from trainers.common import save_torch_atomic
from trainers.common.predict import ImagePrediction, classification, open_rgb
from trainers.timm.data import DataConfig, eval_transform


def _plain(value: Any) -> Any:
    """Tuples and other containers -> lists/dicts of basic values (weights_only-safe)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


def build_checkpoint(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    *,
    epoch: int,
    spec: dict[str, Any],
    classes: list[str],
    data_config: DataConfig,
    metrics: dict[str, float],
    resume: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """``resume`` (history, best epoch, update count, grad-scaler state) is what a retried run needs
    to go on exactly where this epoch ended; it is kept as plain values, so weights_only reads it."""
    import timm

    return {  # a snapshot: training goes on while CheckpointWriter saves it in the background
        "model": {
            k: v.detach().to("cpu", memory_format=torch.contiguous_format, copy=True)
            for k, v in model.state_dict().items()
        },
        "optimizer": _snapshot(optimizer.state_dict()),
        "scheduler": scheduler.state_dict(),
        "epoch": epoch,
        "spec": _plain(spec),
        "classes": list(classes),
        "pretrained_cfg": _plain(dict(getattr(model, "pretrained_cfg", {}) or {})),
        "data_config": data_config.as_dict(),
        "metrics": dict(metrics),
        "timm_version": timm.__version__,
        "resume": _snapshot(_plain_keep_tensors(resume or {})),
    }


TRAINING_STATE = ("optimizer", "scheduler", "resume")


def published(ckpt: dict[str, Any]) -> dict[str, Any]:
    """The checkpoint without what only resuming needs (:data:`TRAINING_STATE`): what ``best.pt``
    holds. Loads with :func:`read_checkpoint` / ``load_checkpoint`` like the full one."""
    return {k: v for k, v in ckpt.items() if k not in TRAINING_STATE}


def _plain_keep_tensors(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value
    if isinstance(value, dict):
        return {str(k): _plain_keep_tensors(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain_keep_tensors(v) for v in value]
    return _plain(value)


def _snapshot(value: Any) -> Any:
    """Copy every tensor in a (nested) state dict to the CPU, so later steps cannot change it."""
    if isinstance(value, torch.Tensor):
        return value.detach().to("cpu", copy=True)
    if isinstance(value, dict):
        return {k: _snapshot(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_snapshot(v) for v in value)
    return value


class CheckpointWriter:
    """Saves ``last.pt`` in a background thread while the next epoch trains (one save in flight),
    then writes ``best.pt`` (the weights, :func:`published`) when the epoch improved. Writes stay
    atomic; errors surface on the next :meth:`submit` or on :meth:`close`."""

    def __init__(self, on_saved: Any = None) -> None:
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self.on_saved = on_saved  # called with (ckpt, last) once last.pt is complete, in the writer thread

    def submit(self, ckpt: dict[str, Any], last: Path, best: Path | None) -> None:
        self.wait()
        self._thread = threading.Thread(target=self._write, args=(ckpt, last, best), name="vtp-ckpt", daemon=True)
        self._thread.start()

    def _write(self, ckpt: dict[str, Any], last: Path, best: Path | None) -> None:
        try:
            save_torch_atomic(ckpt, last)
            if best is not None:
                save_torch_atomic(published(ckpt), best)
            if self.on_saved is not None:
                self.on_saved(ckpt, last)
        except BaseException as e:  # re-raised on the training thread by wait()
            self._error = e

    def wait(self) -> None:
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._error is not None:
            error, self._error = self._error, None
            raise TrainerError(f"could not write a checkpoint: {error}") from error

    close = wait


def read_checkpoint(path: Path | str, name: str | None = None) -> dict[str, Any]:
    """The checkpoint dict at ``path``, loaded with ``weights_only=True`` onto the CPU. TrainerError
    (calling the file ``name``, default its path) when it is missing, unreadable or not a vtp timm
    checkpoint."""
    path = Path(path)
    name = name or str(path)
    if not path.is_file():
        raise TrainerError(f"checkpoint {name} does not exist")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise TrainerError(f"{name} is not a readable vtp timm checkpoint ({e})") from e
    missing = [k for k in ("model", "spec", "classes") if k not in ckpt]
    if missing:
        raise TrainerError(f"{name} is not a vtp timm checkpoint: it lacks {', '.join(missing)}")
    return ckpt


def load_checkpoint(path: Path | str, device: str | torch.device = "cpu",
                    name: str | None = None) -> tuple[nn.Module, list[str]]:
    """Rebuild the trained model (eval mode, on ``device``) and its class names from a checkpoint;
    TrainerError as :func:`read_checkpoint`."""
    import timm

    ckpt = read_checkpoint(path, name)
    classes = list(ckpt["classes"])
    try:
        model = timm.create_model(ckpt["spec"]["model"], pretrained=False, num_classes=len(classes))
        model.load_state_dict(ckpt["model"])
    except (RuntimeError, KeyError, TypeError) as e:  # unknown architecture, weights that do not fit it
        raise TrainerError(f"{name or path} does not rebuild its model ({e})") from e
    model.eval().to(device)
    model.vtp_data_config = ckpt.get("data_config")  # read by predict()
    return model, classes


def load_predictor(path: Path | str, *, name: str | None = None, device: str | torch.device = "cpu") -> Any:
    """A predictor for the checkpoint at ``path`` (see :mod:`trainers.common.predict`): called with
    images (PIL images or file paths) and ``top_k`` (default 5), it returns one classification record
    per image. TrainerError (naming the file ``name``, default its path) when it is not a vtp timm
    checkpoint."""
    model, classes = load_checkpoint(path, device, name)
    transform = eval_transform(DataConfig.from_dict(model.vtp_data_config))

    def predictor(images: list[Any], top_k: int = 5, **_: Any) -> list[ImagePrediction]:
        pil = [open_rgb(im, (getattr(model, "vtp_data_config", None) or {}).get("pixel_scale")) for im in images]
        return [classification(im, top) for im, top in zip(pil, _top_k(model, classes, transform, pil, top_k, device),
                                                           strict=True)]

    return predictor


def _top_k(model: nn.Module, classes: list[str], transform: Any, images: list[Any], top_k: int,
           device: str | torch.device) -> list[list[tuple[str, float]]]:
    batch = torch.stack([transform(im) for im in images]).to(device)
    with torch.no_grad():
        probs = model(batch).float().softmax(dim=1)
    values, indices = probs.topk(min(top_k, len(classes)), dim=1)
    return [
        [(classes[i], float(v)) for v, i in zip(row_v.tolist(), row_i.tolist(), strict=True)]
        for row_v, row_i in zip(values, indices, strict=True)
    ]


def predict(
    path: Path | str, images: list[Any], top_k: int = 5, device: str | torch.device = "cpu"
) -> list[list[tuple[str, float]]]:
    """Top-k (class, probability) per image, best first; images are PIL images or file paths."""
    model, classes = load_checkpoint(path, device)
    transform = eval_transform(DataConfig.from_dict(model.vtp_data_config))
    scale = (getattr(model, "vtp_data_config", None) or {}).get("pixel_scale")
    return _top_k(model, classes, transform, [open_rgb(im, scale) for im in images], top_k, device)
