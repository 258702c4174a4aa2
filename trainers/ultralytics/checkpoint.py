"""Ultralytics checkpoints without running code from them.

A YOLO ``.pt`` file is a pickle of whole model objects, and ultralytics' own loader
(``ultralytics.nn.tasks.torch_safe_load``) unpickles it with ``torch.load(weights_only=False)`` by
default: a crafted file runs any code it likes the moment it is opened. vtp never loads one that way.

- Every ultralytics checkpoint load in a vtp process is a ``weights_only=True`` one: ``env.prepare``
  sets ``ULTRALYTICS_SAFE_LOAD=1`` before ultralytics is imported and ``env.import_ultralytics``
  calls :func:`restrict_loading`, so ``torch_safe_load`` rebuilds only ultralytics' allow-list of
  its model classes. That covers pretrained weights, resumed and continued runs, predictions and
  exports alike; no file is trusted, not even official downloads or vtp's own outputs.
- A checkpoint vtp did not write (the weights folder, ultralytics' download folder) or one it is
  about to serve (predictions, exports) is first checked by :func:`check_checkpoint`: every global
  its pickle names must be on vtp's allow-list below (``torch.nn`` and ``ultralytics.nn`` module
  classes, and the few data types official checkpoints carry), and it must then load with
  ``weights_only=True`` as an ultralytics checkpoint. Anything else is refused with a message
  naming what the file references; nothing in it runs.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from core.errors import TrainerError

# Packages whose nn.Module subclasses a checkpoint may name (layers, heads, whole models)
MODULE_PACKAGES = ("torch.nn.modules", "ultralytics.nn.modules", "ultralytics.nn.tasks")
# Modules whose own classes (not nn.Modules) old checkpoints carry as a model's criterion
CLASS_MODULES = frozenset({"ultralytics.utils.loss", "ultralytics.utils.tal", "ultralytics.nn.distill_model"})
# Plain data official checkpoints carry; ultralytics' restricted loader maps each to a safe callable
DATA_GLOBALS = frozenset({
    "numpy.dtype", "numpy.core.multiarray.scalar", "numpy._core.multiarray.scalar",  # numbers in train_metrics
    "ultralytics.utils.IterableSimpleNamespace", "ultralytics.yolo.utils.IterableSimpleNamespace",  # model.args
    "pathlib.PosixPath", "pathlib.WindowsPath", "pathlib._local.PosixPath", "pathlib._local.WindowsPath",
    "builtins.getattr",  # Detect.forward in segment/pose heads; ultralytics allows nn.Module attributes only
    "ultralytics.nn.modules.block.Silence", "ultralytics.nn.tasks.YOLOv10DetectionModel",  # renamed classes
    "ultralytics.utils.loss.v10DetectLoss",
    # classification checkpoints keep their preprocessing
    "torchvision.transforms.transforms.Compose", "torchvision.transforms.transforms.Normalize",
    "torchvision.transforms.transforms.Resize", "torchvision.transforms.transforms.CenterCrop",
    "torchvision.transforms.transforms.ToTensor", "torchvision.transforms.functional.InterpolationMode",
})
REEXPORT = ("load it once in a trusted environment and save its weights again with ultralytics "
            "(`YOLO('model.pt').save('clean.pt')`), or train from the official weights or pretrained=False")


class UnsafeCheckpoint(TrainerError):
    """A checkpoint vtp refuses to load: it is not a torch zip file, names code outside the
    allow-list, or does not load with ``weights_only=True`` as an ultralytics checkpoint."""


def restrict_loading() -> None:
    """Make every later ultralytics checkpoint load in this process a ``weights_only=True`` one."""
    import ultralytics.nn.tasks as tasks

    tasks.SAFE_LOAD = True  # read by torch_safe_load (and its model builder) at each call


def allowed(name: str) -> bool:
    """Whether a global a checkpoint's pickle names (``module.Name``) is on vtp's allow-list."""
    if name in DATA_GLOBALS:
        return True
    module, _, attr = name.rpartition(".")
    in_packages = any(module == p or module.startswith(p + ".") for p in MODULE_PACKAGES)
    if not (in_packages or module in CLASS_MODULES) or not attr.isidentifier():
        return False
    try:  # only modules of torch.nn and ultralytics themselves are ever imported here
        obj = getattr(importlib.import_module(module), attr, None)
    except ImportError:
        return False
    if not isinstance(obj, type):
        return False
    import torch

    if in_packages:
        return issubclass(obj, torch.nn.Module)
    return obj.__module__ == module


def referenced_globals(path: Path) -> list[str]:
    """The globals the checkpoint's pickle names beyond torch's own safe set, read without unpickling."""
    import torch

    return list(torch.serialization.get_unsafe_globals_in_checkpoint(str(path)))


def check_checkpoint(path: str | Path, *, name: str | None = None) -> Path:
    """``path`` when it is an ultralytics checkpoint vtp loads safely; else :class:`UnsafeCheckpoint`.

    Reads the pickle's global names first (nothing is unpickled), then loads it with
    ``weights_only=True`` through ultralytics' restricted loader, so the checkpoint is known to
    load the same way the trainer, the predictor and the exporter will load it. Messages call the
    file ``name`` (default: its file name).
    """
    from trainers.ultralytics.env import import_ultralytics

    path = Path(path)
    label = name or path.name
    if not path.is_file() or path.stat().st_size == 0:
        raise UnsafeCheckpoint(f"the checkpoint {label} is missing or empty")
    import_ultralytics()  # configured, and its loads restricted, before allowed() imports its modules
    try:
        names = referenced_globals(path)
    except Exception as e:  # noqa: BLE001 - ValueError for a legacy (non-zip) pickle, others for damage
        raise UnsafeCheckpoint(
            f"{label} is not a PyTorch checkpoint vtp can read safely ({_reason(e, path, label)}): vtp loads "
            f"only torch.save zip files, with torch.load(weights_only=True); {REEXPORT}") from None
    refused = sorted({n for n in names if not allowed(n)})
    if refused:
        shown = ", ".join(refused[:6]) + (f" and {len(refused) - 6} more" if len(refused) > 6 else "")
        raise UnsafeCheckpoint(
            f"{label} contains pickled code objects vtp does not load ({shown}): vtp loads ultralytics "
            "checkpoints only with torch.load(weights_only=True), which rebuilds tensors and the torch.nn and "
            f"ultralytics model classes and nothing else; {REEXPORT}")
    import torch
    from ultralytics.nn.tasks import torch_safe_load

    try:
        ckpt, _ = torch_safe_load(str(path), safe_only=True)
    except Exception as e:  # noqa: BLE001 - any failure of the restricted load is a refusal
        raise UnsafeCheckpoint(
            f"{label} does not load with torch.load(weights_only=True) as an ultralytics checkpoint "
            f"({_reason(e, path, label)}); {REEXPORT}") from None
    model = (ckpt.get("ema") or ckpt.get("model")) if isinstance(ckpt, dict) else None
    if not isinstance(model, torch.nn.Module):
        raise UnsafeCheckpoint(f"{label} is not an ultralytics checkpoint: it holds no model; {REEXPORT}")
    return path


def _reason(e: BaseException, path: Path, label: str) -> str:
    """The error in one line, the file called by its label (not where it was put for loading)."""
    text = " ".join(str(e).replace("\u274c", "").replace("\ufe0f", "").replace(str(path), label).split())  # ❌️
    return f"{type(e).__name__}: {text[:300]}" if text else type(e).__name__
