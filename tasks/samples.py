"""Synthetic sample datasets: coloured shapes drawn with PIL, deterministic by seed.

They let the quickstart and the tests train every task without downloading anything. Each class has
its own colour family and the background is a random muted colour, so a tiny model learns something
in a couple of epochs.

Detect, segment, pose and obb samples are written in the Ultralytics YOLO layout
(``data.yaml``, ``images/<split>/*.jpg``, ``labels/<split>/*.txt``); classify samples in the
ImageFolder layout (``<split>/<class>/*.jpg``) that both Ultralytics and timm read.
"""

from __future__ import annotations

import json
import math
import random
import shutil
from dataclasses import dataclass
from pathlib import Path

import yaml
from PIL import Image, ImageDraw

from core.errors import DatasetError

SAMPLES: dict[str, str] = {
    "shapes-detect": "detect",
    "shapes-segment": "segment",
    "shapes-classify": "classify",
    "shapes-pose": "pose",
    "shapes-obb": "obb",
}
CLASSES: tuple[str, ...] = ("circle", "square", "triangle")
# Keypoints of the pose sample: top, right, bottom, left of each shape. A horizontal flip swaps
# right and left, hence FLIP_IDX.
KPT_SHAPE: list[int] = [4, 3]
FLIP_IDX: list[int] = [0, 3, 2, 1]
_COLOURS = {"circle": (220, 40, 40), "square": (40, 170, 60), "triangle": (40, 80, 220)}
_MARKER = ".vtp-sample.json"
_OWNED = ("data.yaml", "images", "labels", "train", "val")

Point = tuple[float, float]


@dataclass
class _Shape:
    cls: int
    cx: float
    cy: float
    half: float  # half the side of the shape's own (unrotated) box, in pixels
    angle: float  # radians; only the obb sample rotates shapes

    def _rotate(self, x: float, y: float) -> Point:
        c, s = math.cos(self.angle), math.sin(self.angle)
        return self.cx + x * c - y * s, self.cy + x * s + y * c

    def polygon(self) -> list[Point]:
        h = self.half
        name = CLASSES[self.cls]
        if name == "circle":
            pts = [(h * math.cos(2 * math.pi * i / 24), h * math.sin(2 * math.pi * i / 24)) for i in range(24)]
        elif name == "square":
            pts = [(-h, -h), (h, -h), (h, h), (-h, h)]
        else:
            pts = [(0.0, -h), (h, h), (-h, h)]
        return [self._rotate(x, y) for x, y in pts]

    def obb(self) -> list[Point]:
        h = self.half
        return [self._rotate(x, y) for x, y in ((-h, -h), (h, -h), (h, h), (-h, h))]

    def keypoints(self) -> list[Point]:
        h = self.half
        return [self._rotate(x, y) for x, y in ((0.0, -h), (h, 0.0), (0.0, h), (-h, 0.0))]

    def bbox(self) -> tuple[float, float, float, float]:
        xs, ys = zip(*self.polygon(), strict=True)
        return min(xs), min(ys), max(xs), max(ys)


def make_sample(
    name: str, dest: Path, *, n_train: int = 24, n_val: int = 8, image_size: int = 128, seed: int = 0
) -> Path:
    """Write the sample dataset ``name`` into ``dest`` (created) and return ``dest``.

    Calling it again with the same arguments returns the existing copy at once; with different
    arguments the sample is regenerated. A non-empty ``dest`` that is not a sample is refused
    rather than overwritten.
    """
    if name not in SAMPLES:
        raise DatasetError(f"unknown sample dataset {name!r}: use one of {', '.join(SAMPLES)}")
    if n_train < 1 or n_val < 1:
        raise DatasetError(f"n_train={n_train}, n_val={n_val}: each split needs at least 1 image")
    if image_size < 32:
        raise DatasetError(f"image_size={image_size} is too small: use 32 pixels or more")
    dest = Path(dest)
    params = {"name": name, "n_train": n_train, "n_val": n_val, "image_size": image_size, "seed": seed}
    marker = dest / _MARKER
    if marker.is_file():
        if json.loads(marker.read_text()) == params:
            return dest
        for owned in _OWNED:
            p = dest / owned
            if p.is_dir():
                shutil.rmtree(p)
            elif p.exists():
                p.unlink()
        marker.unlink()
    elif dest.exists() and any(dest.iterdir()):
        raise DatasetError(
            f"{dest} is not empty and holds no vtp sample: choose an empty or new folder for {name!r}"
        )
    dest.mkdir(parents=True, exist_ok=True)
    task = SAMPLES[name]
    for offset, (split, n) in enumerate((("train", n_train), ("val", n_val))):
        rng = random.Random(seed * 1000 + offset)
        if task == "classify":
            _write_classify_split(dest, split, n, image_size, rng)
        else:
            _write_yolo_split(dest, task, split, n, image_size, rng)
    if task != "classify":
        _write_data_yaml(dest, task)
    marker.write_text(json.dumps(params))
    return dest


def _write_data_yaml(dest: Path, task: str) -> None:
    data: dict = {"path": ".", "train": "images/train", "val": "images/val", "names": dict(enumerate(CLASSES))}
    if task == "pose":
        data["kpt_shape"] = KPT_SHAPE
        data["flip_idx"] = FLIP_IDX
    (dest / "data.yaml").write_text(yaml.safe_dump(data, sort_keys=False))


def _background(rng: random.Random) -> tuple[int, int, int]:
    """A muted colour, far from the saturated class colours."""
    base = rng.randint(90, 200)
    return tuple(max(0, min(255, base + rng.randint(-25, 25))) for _ in range(3))  # type: ignore[return-value]


def _fill(cls: int, rng: random.Random) -> tuple[int, int, int]:
    r, g, b = _COLOURS[CLASSES[cls]]
    j = lambda v: max(0, min(255, v + rng.randint(-20, 20)))  # noqa: E731
    return j(r), j(g), j(b)


def _place(rng: random.Random, size: int, count: int, rotate: bool) -> list[_Shape]:
    """Up to ``count`` shapes that stay inside the image and do not overlap one another."""
    shapes: list[_Shape] = []
    for _ in range(count * 20):
        if len(shapes) == count:
            break
        half = rng.uniform(0.1, 0.2) * size
        reach = half * math.sqrt(2) if rotate else half  # a rotated box's corners reach further
        if 2 * reach + 2 >= size:
            continue
        cx = rng.uniform(reach + 1, size - reach - 1)
        cy = rng.uniform(reach + 1, size - reach - 1)
        if any(math.hypot(cx - s.cx, cy - s.cy) < reach + s.half * 1.5 for s in shapes):
            continue
        angle = rng.uniform(0, math.pi / 2) if rotate else 0.0
        shapes.append(_Shape(rng.randrange(len(CLASSES)), cx, cy, half, angle))
    return shapes


def _draw(shapes: list[_Shape], size: int, rng: random.Random) -> Image.Image:
    img = Image.new("RGB", (size, size), _background(rng))
    draw = ImageDraw.Draw(img)
    for s in shapes:
        draw.polygon(s.polygon(), fill=_fill(s.cls, rng))
    return img


def _norm(points: list[Point], size: int) -> list[str]:
    return [f"{min(1.0, max(0.0, v / size)):.6f}" for p in points for v in p]


def _label_line(s: _Shape, task: str, size: int) -> str:
    x0, y0, x1, y1 = s.bbox()
    box = _norm([((x0 + x1) / 2, (y0 + y1) / 2), (x1 - x0, y1 - y0)], size)
    if task == "detect":
        values = box
    elif task == "segment":
        values = _norm(s.polygon(), size)
    elif task == "obb":
        values = _norm(s.obb(), size)
    else:  # pose: the box, then x y visibility per keypoint
        values = list(box)
        for x, y in s.keypoints():
            values += [*_norm([(x, y)], size), "2"]
    return " ".join([str(s.cls), *values])


def _write_yolo_split(dest: Path, task: str, split: str, n: int, size: int, rng: random.Random) -> None:
    images, labels = dest / "images" / split, dest / "labels" / split
    images.mkdir(parents=True, exist_ok=True)
    labels.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        shapes = _place(rng, size, rng.randint(1, 3), rotate=task == "obb")
        if i < len(CLASSES):  # every class appears in every split, whatever the seed
            shapes[0].cls = i
        stem = f"{split}_{i:04d}"
        _draw(shapes, size, rng).save(images / f"{stem}.jpg", quality=90)
        lines = [_label_line(s, task, size) for s in shapes]
        (labels / f"{stem}.txt").write_text("\n".join(lines) + "\n")


def _write_classify_split(dest: Path, split: str, n: int, size: int, rng: random.Random) -> None:
    for name in CLASSES:
        (dest / split / name).mkdir(parents=True, exist_ok=True)
    for i in range(n):
        cls = i % len(CLASSES)
        shape = _place(rng, size, 1, rotate=True)[0]
        shape.cls = cls
        _draw([shape], size, rng).save(dest / split / CLASSES[cls] / f"{split}_{i:04d}.jpg", quality=90)
