"""Datasets for the Hugging Face trainer: ImageFolder classification and YOLO-format detection
turned into the COCO-style targets transformers' detection image processors expect."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import torch
from PIL import Image, ImageEnhance
from torch.utils.data import DataLoader, Dataset

from core.dataset_layout import label_path, list_images, read_data_yaml
from core.errors import DatasetError, TrainerError
from trainers.common import seed_worker


def _augment(img: Image.Image, hflip: float, color_jitter: float) -> tuple[Image.Image, bool]:
    flipped = random.random() < hflip
    if flipped:
        img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    if color_jitter > 0:
        for enhancer in (ImageEnhance.Brightness, ImageEnhance.Contrast, ImageEnhance.Color):
            img = enhancer(img).enhance(1.0 + random.uniform(-color_jitter, color_jitter))
    return img, flipped


# ---------------------------------------------------------------------------------- classification


class ClassifyDataset(Dataset):
    def __init__(self, folder: Path, classes: list[str], processor: Any, train: bool, hflip: float = 0.5,
                 color_jitter: float = 0.0) -> None:
        self.items = [(p, i) for i, c in enumerate(classes) for p in list_images(folder / c)]
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


def yolo_splits(root: Path, data_yaml: Path) -> tuple[list[str], dict[str, list[Path]]]:
    """(class names, split -> image paths) of the prepared YOLO dataset view at ``root`` whose
    data.yaml is ``data_yaml`` (:func:`core.dataset_layout.read_data_yaml`); train and val needed."""
    try:
        layout = read_data_yaml(root, data_yaml)
    except DatasetError as e:
        raise TrainerError(str(e)) from e
    splits: dict[str, list[Path]] = {}
    for split in ("train", "val"):
        entries = layout.splits.get(split)
        if not entries:
            raise TrainerError(f"{data_yaml} has no `{split}:` entry; add e.g. `{split}: images/{split}`")
        splits[split] = [image for entry in entries for image in list_images(entry)]  # the view: links lead out
    return layout.names, splits


def read_boxes(image: Path, width: int, height: int) -> list[tuple[int, list[float]]]:
    """YOLO ``cls cx cy w h`` (normalized) -> [(cls, [x, y, w, h] in pixels)] (COCO boxes)."""
    path, out = label_path(image), []
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
        worker_init_fn=seed_worker,
        drop_last=shuffle and len(ds) > batch_size,  # a last batch of 1 breaks BatchNorm in training
    )
