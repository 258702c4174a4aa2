"""Datasets for the Hugging Face trainer: ImageFolder classification and YOLO-format detection
turned into the COCO-style targets transformers' detection image processors expect."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import torch
import yaml
from PIL import Image, ImageEnhance
from torch.utils.data import DataLoader, Dataset

from core.errors import TrainerError
from tasks.dataset_formats import list_images
from trainers import loader_workers

VAL_DIRS = ("val", "valid", "validation", "test")
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}


def _augment(img: Image.Image, hflip: float, color_jitter: float) -> tuple[Image.Image, bool]:
    flipped = random.random() < hflip
    if flipped:
        img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    if color_jitter > 0:
        for enhancer in (ImageEnhance.Brightness, ImageEnhance.Contrast, ImageEnhance.Color):
            img = enhancer(img).enhance(1.0 + random.uniform(-color_jitter, color_jitter))
    return img, flipped


# ---------------------------------------------------------------------------------- classification


def class_folders(root: Path) -> tuple[list[str], Path, Path]:
    train = root / "train"
    if not train.is_dir():
        raise TrainerError(f"{root} has no train/ folder: classification needs train/<class>/*.jpg and val/<class>/*.jpg")
    classes = sorted(p.name for p in train.iterdir() if p.is_dir() and not p.name.startswith("."))
    if len(classes) < 2:
        raise TrainerError(f"{train} has {len(classes)} class folder(s): classification needs at least 2")
    val = next((root / n for n in VAL_DIRS if (root / n).is_dir()), None)
    if val is None:
        raise TrainerError(f"{root} has no val/ folder: add val/<class>/*.jpg images to measure accuracy")
    return classes, train, val


class ClassifyDataset(Dataset):
    def __init__(self, folder: Path, classes: list[str], processor: Any, train: bool, hflip: float = 0.5,
                 color_jitter: float = 0.0) -> None:
        self.items = [
            (p, i) for i, c in enumerate(classes) if (folder / c).is_dir()
            for p in sorted((folder / c).iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES
        ]
        self.processor, self.train = processor, train
        self.hflip, self.color_jitter = hflip, color_jitter

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict[str, Any]:
        path, label = self.items[i]
        img = Image.open(path).convert("RGB")
        if self.train:
            img, _ = _augment(img, self.hflip, self.color_jitter)
        pixels = self.processor(images=img, return_tensors="pt")["pixel_values"][0]
        return {"pixel_values": pixels, "labels": label}


def collate_classify(batch: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
    return {
        "pixel_values": torch.stack([b["pixel_values"] for b in batch]),
        "labels": torch.tensor([b["labels"] for b in batch]),
    }


# --------------------------------------------------------------------------------------- detection


def yolo_splits(data_yaml: Path) -> tuple[list[str], dict[str, list[Path]]]:
    data = yaml.safe_load(Path(data_yaml).read_text())
    root = Path(data.get("path") or Path(data_yaml).parent)
    names = data["names"]
    classes = [names[k] for k in sorted(names)] if isinstance(names, dict) else list(names)
    splits: dict[str, list[Path]] = {}
    for split in ("train", "val"):
        entries = data.get(split)
        if not entries:
            raise TrainerError(f"{data_yaml} has no `{split}:` entry; add e.g. `{split}: images/{split}`")
        for entry in [entries] if isinstance(entries, str) else entries:
            path = entry if Path(entry).is_absolute() else root / entry
            splits.setdefault(split, []).extend(list_images(Path(path)))
    return classes, splits


def label_file(image: Path) -> Path:
    parts = list(image.parts)
    idx = len(parts) - 1 - parts[::-1].index("images") if "images" in parts else None
    if idx is None:
        return image.with_suffix(".txt")
    parts[idx] = "labels"
    return Path(*parts).with_suffix(".txt")


def read_boxes(image: Path, width: int, height: int) -> list[tuple[int, list[float]]]:
    """YOLO ``cls cx cy w h`` (normalized) -> [(cls, [x, y, w, h] in pixels)] (COCO boxes)."""
    path, out = label_file(image), []
    if not path.is_file():
        return out
    for line in path.read_text().splitlines():
        parts = line.split()
        if len(parts) < 5:
            continue
        c, cx, cy, w, h = int(float(parts[0])), *map(float, parts[1:5])
        out.append((c, [(cx - w / 2) * width, (cy - h / 2) * height, w * width, h * height]))
    return out


class DetectDataset(Dataset):
    def __init__(self, images: list[Path], processor: Any, train: bool, hflip: float = 0.5,
                 color_jitter: float = 0.0) -> None:
        self.images, self.processor, self.train = images, processor, train
        self.hflip, self.color_jitter = hflip, color_jitter

    def __len__(self) -> int:
        return len(self.images)

    def target(self, i: int) -> tuple[Image.Image, list[tuple[int, list[float]]]]:
        img = Image.open(self.images[i]).convert("RGB")
        return img, read_boxes(self.images[i], *img.size)

    def __getitem__(self, i: int) -> dict[str, Any]:
        img, boxes = self.target(i)
        if self.train:
            img, flipped = _augment(img, self.hflip, self.color_jitter)
            if flipped:
                boxes = [(c, [img.width - x - w, y, w, h]) for c, (x, y, w, h) in boxes]
        annotations = {
            "image_id": i,
            "annotations": [
                {"bbox": b, "category_id": c, "area": b[2] * b[3], "iscrowd": 0} for c, b in boxes
            ],
        }
        enc = self.processor(images=img, annotations=annotations, return_tensors="pt")
        return {"pixel_values": enc["pixel_values"][0], "labels": enc["labels"][0], "index": i}


def collate_detect(batch: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "pixel_values": torch.stack([b["pixel_values"] for b in batch]),
        "labels": [{k: b["labels"][k] for k in ("class_labels", "boxes")} for b in batch],
        "index": [b["index"] for b in batch],
    }


def loader(ds: Dataset, batch_size: int, workers: int, shuffle: bool, seed: int, detect: bool) -> DataLoader:
    return DataLoader(
        ds, batch_size=batch_size, shuffle=shuffle, num_workers=workers,
        collate_fn=collate_detect if detect else collate_classify,
        generator=torch.Generator().manual_seed(seed), persistent_workers=workers > 0,
        worker_init_fn=loader_workers.init_worker,
        drop_last=shuffle and len(ds) > batch_size,  # a last batch of 1 breaks BatchNorm in training
    )
