"""ImageFolder data for the timm trainer: train/ and val/ class folders (:func:`trainers.common.image_folder`),
timm's own transforms. Images are opened by :func:`trainers.common.images.load_rgb` (EXIF-upright 8-bit
RGB; 16-bit images scaled by one dataset-wide bit depth, :attr:`DataConfig.pixel_scale`)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader
from torchvision.datasets import ImageFolder

from core.dataset_layout import class_dirs, is_image
from core.errors import TrainerError
from trainers.common import seed_worker
from trainers.common.images import bit_depth_scale, describe_scale, load_rgb


class FixedClassesFolder(ImageFolder):
    """An ImageFolder whose class indices come from the train split, so val labels line up even
    when val lacks a class."""

    def __init__(self, root: str, classes: list[str], **kwargs: Any) -> None:
        self._fixed = classes
        super().__init__(root, is_valid_file=_is_image_file, **kwargs)

    def find_classes(self, directory: str) -> tuple[list[str], dict[str, int]]:
        present = [p.name for p in class_dirs(Path(directory))]
        unknown = [c for c in present if c not in self._fixed]
        if unknown:
            raise TrainerError(
                f"{directory} has class folders that train/ lacks: {', '.join(unknown)}; "
                "add training images for them or remove them from the validation split"
            )
        return list(self._fixed), {c: i for i, c in enumerate(self._fixed)}


def _is_image_file(path: str) -> bool:
    return is_image(Path(path))


@dataclass
class DataConfig:
    """How images become tensors; stored in checkpoints so prediction matches training."""

    input_size: tuple[int, int, int]
    interpolation: str
    mean: tuple[float, ...]
    std: tuple[float, ...]
    crop_pct: float
    # the value shown as 255 for 16-bit images (trainers.common.images.bit_depth_scale); None: 8-bit data
    pixel_scale: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "input_size": list(self.input_size),
            "interpolation": self.interpolation,
            "mean": list(self.mean),
            "std": list(self.std),
            "crop_pct": self.crop_pct,
            "pixel_scale": self.pixel_scale,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DataConfig:
        return cls(
            tuple(d["input_size"]),
            d["interpolation"],
            tuple(d["mean"]),
            tuple(d["std"]),
            float(d["crop_pct"]),
            d.get("pixel_scale"),  # checkpoints written before it existed: 8-bit handling
        )

    def pixel_note(self) -> str | None:
        """What the report says about the pixel scale, e.g. "16-bit images scaled from 12-bit range
        (0-4095 -> 0-255)"; None for 8-bit data."""
        return describe_scale(self.pixel_scale)


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


def loaders(
    train_dir: Path,
    val_dir: Path,
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
    """(train, val) loaders of the ImageFolder dataset. Sets ``cfg.pixel_scale`` to the dataset's
    16-bit scale (:func:`trainers.common.images.bit_depth_scale` over train and val images; None
    for 8-bit data), so the checkpoint that stores ``cfg`` predicts with the same scale. Batches are
    (images: float (B, 3, H, W) normalized by ``cfg.mean``/``cfg.std``, labels: int64 (B,)).
    Raises TrainerError when a class folder is empty or val/ has classes train/ lacks."""
    train_tf = train_transform(cfg, hflip=hflip, color_jitter=color_jitter, scale_min=scale_min)
    try:
        train_ds = FixedClassesFolder(str(train_dir), classes, transform=train_tf)
        # allow_empty: a class may be missing from val/ and still be trained
        val_ds = FixedClassesFolder(str(val_dir), classes, transform=eval_transform(cfg), allow_empty=True)
    except FileNotFoundError as e:  # torchvision: a class folder without images
        raise TrainerError(f"the image folder dataset at {train_dir.parent} is incomplete: {e}") from e
    cfg.pixel_scale = bit_depth_scale(p for ds in (train_ds, val_ds) for p, _ in ds.samples)
    for ds in (train_ds, val_ds):
        ds.loader = partial(load_rgb, scale=cfg.pixel_scale)  # picklable for worker processes
    generator = torch.Generator().manual_seed(seed)
    common: dict[str, Any] = {
        "num_workers": workers,
        "pin_memory": pin_memory,
        "persistent_workers": workers > 0,
        "worker_init_fn": seed_worker,
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
