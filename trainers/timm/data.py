"""ImageFolder data for the timm trainer: train/ and val/ class folders, timm's own transforms."""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader
from torchvision.datasets import ImageFolder

from core.errors import TrainerError
from trainers import loader_workers

VAL_DIRS = ("val", "valid", "validation", "test")


class FixedClassesFolder(ImageFolder):
    """An ImageFolder whose class indices come from the train split, so val labels line up even
    when val lacks a class."""

    def __init__(self, root: str, classes: list[str], **kwargs: Any) -> None:
        self._fixed = classes
        super().__init__(root, **kwargs)

    def find_classes(self, directory: str) -> tuple[list[str], dict[str, int]]:
        present = sorted(
            p.name for p in Path(directory).iterdir() if p.is_dir() and not p.name.startswith(".")
        )
        unknown = [c for c in present if c not in self._fixed]
        if unknown:
            raise TrainerError(
                f"{directory} has class folders that train/ lacks: {', '.join(unknown)}; "
                "add training images for them or remove them from the validation split"
            )
        return list(self._fixed), {c: i for i, c in enumerate(self._fixed)}


@dataclass
class DataConfig:
    """How images become tensors; stored in checkpoints so prediction matches training."""

    input_size: tuple[int, int, int]
    interpolation: str
    mean: tuple[float, ...]
    std: tuple[float, ...]
    crop_pct: float

    def as_dict(self) -> dict[str, Any]:
        return {
            "input_size": list(self.input_size),
            "interpolation": self.interpolation,
            "mean": list(self.mean),
            "std": list(self.std),
            "crop_pct": self.crop_pct,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DataConfig:
        return cls(
            tuple(d["input_size"]),
            d["interpolation"],
            tuple(d["mean"]),
            tuple(d["std"]),
            float(d["crop_pct"]),
        )


def data_config(model: torch.nn.Module, image_size: int) -> DataConfig:
    from timm.data import resolve_data_config

    cfg = resolve_data_config({"input_size": (3, image_size, image_size)}, model=model)
    return DataConfig(
        (3, image_size, image_size),
        cfg.get("interpolation", "bilinear"),
        tuple(cfg["mean"]),
        tuple(cfg["std"]),
        float(cfg.get("crop_pct", 0.875)),
    )


def eval_transform(cfg: DataConfig) -> Any:
    from timm.data import create_transform

    return create_transform(
        cfg.input_size,
        is_training=False,
        interpolation=cfg.interpolation,
        mean=cfg.mean,
        std=cfg.std,
        crop_pct=cfg.crop_pct,
    )


def train_transform(cfg: DataConfig, *, hflip: float, color_jitter: float, scale_min: float) -> Any:
    from timm.data import create_transform

    return create_transform(
        cfg.input_size,
        is_training=True,
        scale=(scale_min, 1.0),
        hflip=hflip,
        color_jitter=color_jitter if color_jitter > 0 else None,
        interpolation=cfg.interpolation,
        mean=cfg.mean,
        std=cfg.std,
    )


def train_classes(root: Path) -> list[str]:
    train = root / "train"
    if not train.is_dir():
        raise TrainerError(
            f"{root} has no train/ folder: timm needs train/<class>/*.jpg and val/<class>/*.jpg"
        )
    classes = sorted(p.name for p in train.iterdir() if p.is_dir() and not p.name.startswith("."))
    if len(classes) < 2:
        raise TrainerError(f"{train} has {len(classes)} class folder(s): classification needs at least 2")
    return classes


def val_dir(root: Path) -> Path:
    for name in VAL_DIRS:
        if (root / name).is_dir():
            return root / name
    raise TrainerError(f"{root} has no val/ folder: add val/<class>/*.jpg images to measure accuracy")


def _seed_worker(worker_id: int) -> None:
    loader_workers.init_worker(worker_id)
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)


def loaders(
    root: Path,
    classes: list[str],
    cfg: DataConfig,
    *,
    batch_size: int,
    workers: int,
    seed: int,
    pin_memory: bool,
    hflip: float,
    color_jitter: float,
    scale_min: float,
) -> tuple[DataLoader, DataLoader]:
    train_tf = train_transform(cfg, hflip=hflip, color_jitter=color_jitter, scale_min=scale_min)
    try:
        train_ds = FixedClassesFolder(str(root / "train"), classes, transform=train_tf)
        # allow_empty: a class may be missing from val/ and still be trained
        val_ds = FixedClassesFolder(
            str(val_dir(root)), classes, transform=eval_transform(cfg), allow_empty=True
        )
    except FileNotFoundError as e:  # torchvision: a class folder without images
        raise TrainerError(f"the image folder dataset at {root} is incomplete: {e}") from e
    generator = torch.Generator().manual_seed(seed)
    common: dict[str, Any] = {
        "num_workers": workers,
        "pin_memory": pin_memory,
        "persistent_workers": workers > 0,
        "worker_init_fn": _seed_worker,
    }
    train_dl = DataLoader(
        train_ds,
        batch_size=batch_size,
        shuffle=True,
        generator=generator,
        drop_last=len(train_ds) > batch_size,  # a last batch of 1 breaks BatchNorm in training mode
        **common,
    )
    val_dl = DataLoader(val_ds, batch_size=batch_size, shuffle=False, **common)
    return train_dl, val_dl
