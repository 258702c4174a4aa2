"""Datasets for the Hugging Face trainer: ImageFolder classification and YOLO-format detection
turned into the COCO-style targets transformers' detection image processors expect.

Images are opened by :func:`trainers.common.images.load_rgb` (EXIF-upright 8-bit RGB; 16-bit images
scaled by one dataset-wide bit depth). Label rows are read as the dataset checker
(:mod:`tasks.validation`) and Ultralytics read them: ``cls cx cy w h`` boxes, and polygon rows
``cls x1 y1 x2 y2 ...`` (odd count, 7 values or more) as their bounding box."""

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
from trainers.common.images import bit_depth_scale, load_rgb

AUTO = "auto"  # pixel_scale: computed from the dataset's own images (bit_depth_scale)


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
    """The images of ``folder/<class>/`` for each of ``classes`` (label = index in ``classes``).

    ``pixel_scale``: the value shown as 255 for 16-bit images; pass one value for train and val
    (:func:`trainers.common.images.bit_depth_scale` over both); ``"auto"`` computes it from this
    split's images (the same bit depth in practice), None uses the container's range. An item is
    ``{"pixel_values": float (3, H, W) as the processor makes it, "labels": int}``."""

    def __init__(self, folder: Path, classes: list[str], processor: Any, train: bool, hflip: float = 0.5,
                 color_jitter: float = 0.0, pixel_scale: float | str | None = AUTO) -> None:
        self.items = [(p, i) for i, c in enumerate(classes) for p in list_images(folder / c)]
        self.processor, self.train = processor, train
        self.hflip, self.color_jitter = hflip, color_jitter
        self.pixel_scale = bit_depth_scale(p for p, _ in self.items) if pixel_scale == AUTO else pixel_scale

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict[str, Any]:
        path, label = self.items[i]
        img = load_rgb(path, self.pixel_scale)
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
    if layout.data.get("kpt_shape"):
        raise TrainerError(
            f"{data_yaml} is a pose dataset (kpt_shape {layout.data['kpt_shape']}): the Hugging Face trainer "
            "trains detection from box or polygon rows only; train it with an ultralytics pose model, or "
            "import a copy without keypoints"
        )
    splits: dict[str, list[Path]] = {}
    for split in ("train", "val"):
        entries = layout.splits.get(split)
        if not entries:
            raise TrainerError(f"{data_yaml} has no `{split}:` entry; add e.g. `{split}: images/{split}`")
        splits[split] = [image for entry in entries for image in list_images(entry)]  # the view: links lead out
    return layout.names, splits


def row_box(values: list[float]) -> tuple[int, tuple[float, float, float, float]]:
    """One YOLO detect label row -> (class id, (x1, y1, x2, y2) normalized to 0-1).

    ``cls cx cy w h`` (5 values) is a box; ``cls x1 y1 x2 y2 ...`` (an odd count of 7 or more: 3 or
    more points) is a polygon and becomes its bounding box, as Ultralytics does for detection
    (``segments2boxes``). Raises ValueError for any other count (e.g. a pose row: class, box and
    keypoints) or a class id that is not a whole number >= 0."""
    n = len(values)
    c = values[0]
    if c % 1 != 0 or c < 0:
        raise ValueError(f"class id {c:g} is not a whole number >= 0")
    if n == 5:
        cx, cy, w, h = values[1:5]
        return int(c), (cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2)
    if n >= 7 and n % 2 == 1:
        xs, ys = values[1::2], values[2::2]
        return int(c), (min(xs), min(ys), max(xs), max(ys))
    raise ValueError(
        f"{n} values: a detect row is 5 values (class cx cy w h) or a polygon (class x1 y1 x2 y2 ..., "
        "3 or more points); keypoint (pose) rows are not read by the Hugging Face trainer"
    )


def read_boxes(image: Path, width: int, height: int) -> list[tuple[int, list[float]]]:
    """The objects of ``image``'s YOLO label file as [(class id, [x, y, w, h] in pixels)] (COCO
    boxes, top-left corner) for an image of ``width`` x ``height`` pixels; [] without a label file.

    Box rows and polygon rows (their bounding box) are read as by :func:`row_box`; blank lines are
    skipped. Raises TrainerError naming ``file:line`` for a row that is neither (the dataset check
    refuses those) or holds a non-number, and when the file is not UTF-8 text."""
    path, out = label_path(image), []
    if not path.is_file():
        return out
    try:
        text = path.read_text(encoding="utf-8-sig")  # as the dataset check reads it (a BOM is fine)
    except (OSError, UnicodeDecodeError) as e:
        raise TrainerError(f"label file {path} cannot be read ({e}); rewrite it as UTF-8 text") from e
    for n, line in enumerate(text.splitlines(), start=1):
        parts = line.split()
        if not parts:
            continue
        try:
            c, (x1, y1, x2, y2) = row_box([float(v) for v in parts])
        except ValueError as e:
            raise TrainerError(f"{path}:{n}: {e}") from e
        out.append((c, [x1 * width, y1 * height, (x2 - x1) * width, (y2 - y1) * height]))
    return out


class DetectDataset(Dataset):
    """YOLO-format detection images with their label rows (:func:`read_boxes`).

    ``pixel_scale`` as in :class:`ClassifyDataset`. An item is ``{"pixel_values": float (3, H, W),
    "labels": the processor's target (``class_labels`` int (N,), ``boxes`` float (N, 4) normalized
    cx cy w h), "index": int}``; :meth:`target` gives the RGB image and its COCO boxes in pixels."""

    def __init__(self, images: list[Path], processor: Any, train: bool, hflip: float = 0.5,
                 color_jitter: float = 0.0, pixel_scale: float | str | None = AUTO) -> None:
        self.images, self.processor, self.train = images, processor, train
        self.hflip, self.color_jitter = hflip, color_jitter
        self.pixel_scale = bit_depth_scale(images) if pixel_scale == AUTO else pixel_scale

    def __len__(self) -> int:
        return len(self.images)

    def target(self, i: int) -> tuple[Image.Image, list[tuple[int, list[float]]]]:
        img = load_rgb(self.images[i], self.pixel_scale)
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
