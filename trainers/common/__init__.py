"""What every trainer plugin with a loop of its own shares: the device a run trains on, seeding,
options from ``spec.overrides``, epoch bookkeeping (best epoch by ``spec.main_metric``, early
stopping), atomic file writes, and the ImageFolder split folders.

Importing this package is cheap (torch and numpy are imported by the functions that need them).
The evaluation report is :mod:`trainers.common.report`, prediction drawing and result records
:mod:`trainers.common.predict`, the ONNX/TorchScript export of a torch module
:mod:`trainers.common.export`.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from core.dataset_layout import class_dirs, find_val_dir
from core.errors import TrainerError

if TYPE_CHECKING:
    import torch

__all__ = [
    "EpochTracker",
    "atomic_path",
    "copy_folder_atomic",
    "image_folder",
    "link_atomic",
    "options_from_overrides",
    "replace_folder",
    "resolve_device",
    "save_torch_atomic",
    "seed_everything",
    "seed_worker",
    "write_bytes_atomic",
    "write_text_atomic",
]

T = TypeVar("T")


# ------------------------------------------------------------------------------------------ device


def resolve_device(device: str) -> tuple[torch.device, str | None]:
    """TrainSpec's ``device`` -> (the one torch device a run trains on, a note for the run's log or None).

    One behaviour for every trainer, the strictest of those the trainers had:

    - ``auto``: the first CUDA GPU, else Apple's MPS, else the CPU.
    - ``cpu``; ``mps`` only when MPS is available.
    - ``0``, ``cuda``, ``cuda:1``, ``0,1``: one CUDA GPU (a run trains on one device: several would
      need DDP subprocesses, out of reach of vtp's callbacks); with several named, the first is
      used and the note says so. The GPU must be visible (``torch.cuda.device_count()``).

    Raises TrainerError, saying what to use instead, when the device named is not here.
    """
    import torch

    device = str(device).strip().lower()
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda:0"), None
        if torch.backends.mps.is_available():
            return torch.device("mps"), None
        return torch.device("cpu"), None
    if device == "cpu":
        return torch.device("cpu"), None
    if device == "mps":
        if not torch.backends.mps.is_available():
            raise TrainerError("device='mps' asks for Apple's GPU but it is not available: use 'auto' or 'cpu'")
        return torch.device("mps"), None
    index = device.removeprefix("cuda").lstrip(":") or "0"
    note = None
    if "," in index:
        index = index.split(",")[0]
        note = f"device={device!r}: vtp trains on one GPU per run; using GPU {index}."
    if not index.isdigit():
        raise TrainerError(f"device={device!r} is not a device: use auto, cpu, cuda, cuda:0, 0 or mps")
    if not torch.cuda.is_available():
        raise TrainerError(
            f"device={device!r} asks for a CUDA GPU but none is visible here: use device='auto' or 'cpu'"
        )
    count = torch.cuda.device_count()
    if int(index) >= count:
        raise TrainerError(
            f"device={device!r} names GPU {index} but only {count} are visible: use 0 to {count - 1} or 'auto'"
        )
    return torch.device(f"cuda:{int(index)}"), note


# ----------------------------------------------------------------------------------------- seeding


def accumulation_note(accumulate: int, batch_size: int, batches: int) -> tuple[int, str]:
    """(optimizer steps an epoch, the run's note) for gradient accumulation over ``accumulate``
    batches of ``batch_size`` images with ``batches`` batches an epoch: ceil(batches / accumulate)
    steps, the last group of an epoch shorter when it does not divide."""
    steps = -(-batches // accumulate)
    return steps, (f"gradient accumulation: {accumulate} batches of {batch_size} = {accumulate * batch_size} images "
                   f"per optimizer step ({steps} step{'s' if steps != 1 else ''} an epoch of {batches} batches)")


def seed_everything(seed: int) -> None:
    """Seed Python's ``random``, NumPy's global generator and torch (every CUDA device too)."""
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def seed_worker(worker_id: int) -> None:
    """``worker_init_fn`` of the trainers' DataLoaders: the worker's exit hooks are made harmless
    (:func:`trainers.loader_workers.init_worker`), then ``random`` and NumPy are seeded from the
    seed torch gave this worker (the loader's generator decides it), so augmentations repeat."""
    import numpy as np
    import torch

    from trainers import loader_workers

    loader_workers.init_worker(worker_id)
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)


# ----------------------------------------------------------------------------------------- options


def options_from_overrides(cls: type[T], overrides: dict[str, Any], framework: str) -> T:
    """``cls(**overrides)`` for a dataclass of a trainer's settings; TrainerError naming the keys
    ``cls`` has no field for, and the accepted ones (TrainSpec checked the values already)."""
    known = {f.name for f in fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise TrainerError(
            f"{framework} overrides {', '.join(unknown)} are not supported; accepted: {', '.join(sorted(known))}"
        )
    return cls(**overrides)


# ---------------------------------------------------------------------------------- epoch tracking


@dataclass
class EpochTracker:
    """The epochs of one run: their metrics, the best one by ``main_metric`` and early stopping.

    ``main_metric`` is the spec's (``spec.main_metric``: top-1 accuracy, mAP50-95, ...): higher is
    better; on a tie the lower ``val/loss`` wins. ``patience`` is ``spec.patience`` (0 = off):
    training stops when that many epochs went by since the best one, unless it was the last.
    """

    main_metric: str
    patience: int
    epochs: int
    history: list[dict[str, float]] = field(default_factory=list)
    best: dict[str, float] | None = None
    best_epoch: int = 0

    def restore(self, history: list[dict[str, float]], best_epoch: int) -> None:
        """Take over a resumed run's history (each row {"epoch", metrics...}) and its best epoch."""
        self.history = [dict(h) for h in history]
        self.best_epoch = best_epoch
        self.best = next((dict(h) for h in self.history if h["epoch"] == best_epoch), None)

    def improves(self, metrics: dict[str, float]) -> bool:
        """Whether ``metrics`` beat the best epoch so far (see the class doc)."""
        if self.best is None:
            return True
        new, old = metrics[self.main_metric], self.best[self.main_metric]
        if new != old:
            return new > old
        return metrics.get("val/loss", float("inf")) < self.best.get("val/loss", float("inf"))

    def record(self, epoch: int, metrics: dict[str, float]) -> bool:
        """Add epoch ``epoch``'s metrics to the history; True when it is the new best epoch.
        KeyError when ``metrics`` lacks the main metric."""
        improved = self.improves(metrics)
        self.history.append({"epoch": epoch, **metrics})
        if improved:
            self.best, self.best_epoch = dict(metrics), epoch
        return improved

    def stop_early(self, epoch: int) -> bool:
        """Whether training stops after ``epoch``: ``patience`` epochs without a better one, and
        epochs are left."""
        return bool(self.patience) and epoch - self.best_epoch >= self.patience and epoch < self.epochs

    def early_stop_note(self, epoch: int) -> str:
        return (f"early stopping after epoch {epoch} of {self.epochs}: {self.main_metric} has not improved for "
                f"{self.patience} epochs (best: epoch {self.best_epoch}).")

    def best_metrics(self) -> dict[str, float]:
        """The best epoch's validation metrics (``val/...`` and ``metrics/...``); the TrainResult's."""
        if self.best is None:
            raise TrainerError("no epoch was evaluated, so there is no best one")
        return {k: v for k, v in self.best.items() if k.startswith(("val/", "metrics/"))}


# ---------------------------------------------------------------------------------- atomic writes


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):  # not every file system lets a folder be opened and synced
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _tmp_beside(path: Path) -> Path:
    """A temporary name in ``path``'s folder, one per process and thread: writers never share one."""
    return path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")


@contextlib.contextmanager
def atomic_path(path: Path | str) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` for the caller to write; when the block ends without
    an error the file is fsynced and renamed onto ``path`` (``os.replace``), and the folder is
    fsynced, so a reader sees the old file or the whole new one, also after a crash. On an error
    the temporary file is removed and ``path`` is left as it was."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_beside(path)
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def write_bytes_atomic(path: Path | str, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_path`); returns ``path``."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_text_atomic(path: Path | str, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically (see :func:`atomic_path`); returns ``path``."""
    return write_bytes_atomic(path, text.encode("utf-8"))


def save_torch_atomic(obj: Any, path: Path | str) -> Path:
    """``torch.save(obj)`` to ``path`` atomically (see :func:`atomic_path`); returns ``path``."""
    import torch

    with atomic_path(path) as tmp:
        torch.save(obj, tmp)
    return Path(path)


def link_atomic(src: Path, dst: Path) -> None:
    """``dst`` becomes another name of ``src``'s file (no copy), replacing ``dst`` atomically;
    a copy where a hard link cannot be made (another device)."""
    with atomic_path(dst) as tmp:
        try:
            os.link(src, tmp)
        except OSError:
            shutil.copyfile(src, tmp)


def replace_folder(tmp: Path, folder: Path) -> None:
    """Put the complete folder ``tmp`` (a sibling of ``folder``) in ``folder``'s place. A reader
    sees the old folder, or none for the instant between two renames, or the new one; never half of one."""
    old = folder.with_name(f".{folder.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if folder.exists():
        folder.rename(old)
    tmp.rename(folder)
    _fsync_dir(folder.parent)
    shutil.rmtree(old, ignore_errors=True)


def copy_folder_atomic(src: Path, dst: Path) -> None:
    """Copy the folder ``src`` to ``dst`` (replacing it) through a temporary sibling and :func:`replace_folder`."""
    tmp = dst.with_name(f".{dst.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(src, tmp)
    replace_folder(tmp, dst)


# --------------------------------------------------------------------------------------- datasets


def image_folder(root: Path) -> tuple[list[str], Path, Path]:
    """(class names, train folder, val folder) of the ImageFolder dataset at ``root``: classes are
    ``train/``'s class folders, sorted; the val folder is the first of
    :data:`core.dataset_layout.VAL_DIRS`. TrainerError when a folder is missing or there are
    fewer than 2 classes."""
    root = Path(root)
    train = root / "train"
    if not train.is_dir():
        raise TrainerError(
            f"{root} has no train/ folder: classification needs train/<class>/*.jpg and val/<class>/*.jpg"
        )
    classes = [p.name for p in class_dirs(train)]
    if len(classes) < 2:
        raise TrainerError(f"{train} has {len(classes)} class folder(s): classification needs at least 2")
    val = find_val_dir(root)
    if val is None:
        raise TrainerError(f"{root} has no val/ folder: add val/<class>/*.jpg images to measure accuracy")
    return classes, train, val
