"""Thumbnails of a dataset's images with their labels drawn (YOLO boxes, polygons, keypoints; the
class name for ImageFolder), read through the dataset cache like a run would.

Bounded: an image over ``MAX_PIXELS`` (from its header) is skipped without being decoded, and the
others are decoded downscaled (``Image.draft`` lets JPEG decode at 1/2..1/8 scale) straight to
thumbnail size, so a preview costs a few MB whatever the dataset holds."""

from __future__ import annotations

import functools
import warnings
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw, ImageFont

from core.dataset_layout import SPLITS, VAL_DIRS, find_data_yaml, is_image, read_data_yaml
from core.settings import Settings
from tasks import dataset_store
from tasks.storage import Storage

THUMB = 256
PREVIEW_SPLITS = (*VAL_DIRS, *(s for s in SPLITS if s not in VAL_DIRS))  # a val split first, train last
MAX_PIXELS = 50_000_000  # as tasks.validation: larger images are refused there and skipped here
PALETTE = [(255, 56, 56), (72, 249, 10), (0, 194, 255), (255, 178, 29), (207, 210, 49), (146, 204, 23),
           (61, 219, 134), (26, 147, 52), (0, 212, 187), (44, 153, 168), (132, 56, 255), (255, 149, 200)]


def _images(folder: Path, n: int) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if is_image(p))[:n] if folder.is_dir() else []


def _names(root: Path, classes: list[str]) -> list[str]:
    from core.errors import DatasetError

    if find_data_yaml(root) is None:
        return classes
    try:
        return read_data_yaml(root).names or classes  # size-capped, no aliases, ids checked
    except (OSError, DatasetError):
        return classes


@functools.lru_cache(maxsize=1)
def _label_font() -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """A font that draws the class names, Hangul included (PIL's default has no Hangul)."""
    from core.fonts import find_cjk_font

    found = find_cjk_font()
    try:
        return ImageFont.truetype(str(found[1]), 12) if found else ImageFont.load_default()
    except OSError:
        return ImageFont.load_default()


def _draw_yolo(image: Image.Image, label: Path, names: list[str], task: str | None) -> str:
    draw = ImageDraw.Draw(image)
    font = _label_font()
    w, h = image.size
    seen = []
    for line in label.read_text().splitlines() if label.exists() else []:
        parts = line.split()
        if len(parts) < 5:
            continue
        cls, vals = int(float(parts[0])), [float(v) for v in parts[1:]]
        colour = PALETTE[cls % len(PALETTE)]
        name = names[cls] if 0 <= cls < len(names) else str(cls)
        seen.append(name)
        if len(vals) == 4 or task == "pose":
            cx, cy, bw, bh = vals[:4]
            box = [(cx - bw / 2) * w, (cy - bh / 2) * h, (cx + bw / 2) * w, (cy + bh / 2) * h]
            draw.rectangle(box, outline=colour, width=2)
            for i in range(4, len(vals) - 2, 3):  # pose keypoints x y visibility
                x, y = vals[i] * w, vals[i + 1] * h
                draw.ellipse([x - 2, y - 2, x + 2, y + 2], fill=colour)
            draw.text((box[0] + 2, box[1] + 1), name, fill=colour, font=font)
        else:  # segment polygon or obb corners
            pts = [(vals[i] * w, vals[i + 1] * h) for i in range(0, len(vals) - 1, 2)]
            draw.polygon(pts, outline=colour, width=2)
            draw.text(pts[0], name, fill=colour, font=font)
    return ", ".join(sorted(set(seen))) or "(no labels)"


def _thumb(path: Path, size: tuple[int, int] | None = None) -> Image.Image | None:
    """``path`` decoded at thumbnail size: width THUMB (aspect kept), or exactly ``size``; None when it
    is over MAX_PIXELS or unreadable. Nothing larger than needed is decoded for JPEG."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # the cap below decides
            im = Image.open(path)
        with im:
            w, h = im.size
            if w * h > MAX_PIXELS or w < 1 or h < 1:
                return None
            target = size or (THUMB, max(1, round(THUMB * h / w)))
            im.draft("RGB", target)  # JPEG: decode at the smallest scale still >= target
            im.thumbnail((max(target[0], 1) * 2, max(target[1], 1) * 2))  # bounded work before the exact resize
            return im.convert("RGB").resize(target)
    except (OSError, ValueError, Image.DecompressionBombError):
        return None


def thumbnails(ref: str, *, settings: Settings, n: int = 8, classes: list[str] | None = None,
               task: str | None = None) -> list[tuple[str, str, Image.Image]]:
    """Up to ``n`` (relative path, caption, thumbnail) from the val split (train when val is empty)."""
    storage = Storage(settings=settings)
    root, _, _ = dataset_store.download(storage, ref, settings.cache_root, lease=False)  # a long-lived process: no lease
    out: list[tuple[str, str, Image.Image]] = []
    if (root / "images").is_dir():
        names = _names(root, classes or [])
        split = next((s for s in PREVIEW_SPLITS if _images(root / "images" / s, 1)), "")
        for img in _images(root / "images" / split, n):
            rel = img.relative_to(root / "images")
            label = (root / "labels" / rel).with_suffix(".txt")
            image = _thumb(img)
            if image is None:
                continue
            out.append((str(Path("images") / rel), _draw_yolo(image, label, names, task), image))
        return out
    split = next((s for s in PREVIEW_SPLITS if _images(root / s, 1)), "")
    per_class = sorted(p for p in (root / split).iterdir() if p.is_dir()) if split else []
    picks: list[Path] = []
    for i in range(n):  # round-robin over the classes
        for d in per_class:
            files = _images(d, i + 1)
            if len(files) > i and len(picks) < n:
                picks.append(files[i])
    for img in picks:
        image = _thumb(img, (THUMB, THUMB))
        if image is None:
            continue
        draw: Any = ImageDraw.Draw(image)
        draw.rectangle([0, 0, THUMB, 16], fill=(0, 0, 0))
        draw.text((4, 2), img.parent.name, fill=(255, 255, 0), font=_label_font())
        out.append((str(img.relative_to(root)), img.parent.name, image))
    return out
