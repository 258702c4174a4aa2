"""Open dataset images as the 8-bit RGB pictures every trainer's transforms expect, without losing
what high-bit-depth images (16-bit thermal, X-ray and microscopy PNG/TIFF exports) hold.

``PIL.Image.convert("RGB")`` clips a 16-bit grayscale image (PIL mode ``I;16`` or ``I``) at 255, so
12-bit data (values up to 4095) becomes pure white and every image of the dataset looks alike. The
choice made here, and why:

- **One fixed scale per dataset**, never per image. Per-image min-max stretching would make a
  'hot' and a 'cool' thermal image (the same scene 2000 levels apart) look alike: the absolute level
  is often the very thing the classes differ in.
- **The scale is the dataset's effective bit depth**, not the container's: 12-bit data in a 16-bit
  PNG divided by 65535 uses 1/16 of the 8-bit range (nearly black, 4 bits of information left).
  :func:`bit_depth_scale` reads the dataset's largest value once and rounds it up to 8, 10, 12, 14
  or 16 bits (beyond 16: the next whole bit), so value ``v`` becomes ``round(v * 255 / (2**bits - 1))``.
  Rounding up to a bit depth (rather than using the max itself) keeps the scale stable when images
  are added and matches how sensors store data.
- Without a dataset scale (``scale=None``) :func:`load_rgb` uses the container's full range
  (65535 for 16-bit): honest, identical for every image, but dark for 10/12/14-bit data.
- Negative values (signed ``I`` or float ``F`` images) are clipped at 0; float images whose values
  lie in [0, 1] use scale 1.0.

8-bit images (``L``, ``P``, ``RGB``, ``RGBA``, ``CMYK``, ...) load exactly as ``convert("RGB")`` does.
Every image is turned upright by its EXIF orientation first, as Ultralytics (and labelling tools)
show it, so boxes drawn on the upright picture line up. Pillow reads 16-bit *colour* PNGs (48-bit RGB)
as 8-bit RGB itself (keeping the high byte); those are not rescaled here.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps

log = logging.getLogger("vtp.images")

HIGH_DEPTH_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I", "F")
"""PIL modes that hold more than 8 bits per pixel and need a scale (see :func:`load_rgb`)."""

BIT_DEPTHS = (8, 10, 12, 14, 16)
"""The bit depths a dataset's largest value is rounded up to; beyond 16, the next whole bit."""


def _container_max(mode: str) -> float:
    if mode.startswith("I;16"):
        return 65535.0
    if mode == "I":
        return 65535.0  # Pillow opens 16-bit PNGs as "I" in older versions; true 32-bit data is rare
    return 1.0  # "F"


def is_high_depth(image: Image.Image) -> bool:
    """Whether ``image`` (an opened PIL image; nothing is decoded) holds more than 8 bits per pixel."""
    return image.mode in HIGH_DEPTH_MODES


def image_max(path: str | Path) -> float | None:
    """The largest pixel value of a high-bit-depth image at ``path`` (its own units), or None for an
    8-bit image (whose pixels are then not decoded: only the header is read).

    Raises OSError (PIL's UnidentifiedImageError included) when the file cannot be read as an image.
    """
    with Image.open(path) as im:
        if not is_high_depth(im):
            return None
        a = np.asarray(im)
    return float(np.nanmax(a)) if a.size else 0.0


def scale_for(max_value: float, mode: str = "I;16") -> float:
    """The scale (the value shown as 255) for a dataset whose largest value is ``max_value``:
    ``2**bits - 1`` for the smallest bit depth of :data:`BIT_DEPTHS` (or, above 16 bits, the next
    whole bit) that holds it. Float (``F``) data in [0, 1] gives 1.0; above 1 it is treated as
    integer levels."""
    if mode == "F" and max_value <= 1.0:
        return 1.0
    need = max(1, math.ceil(math.log2(max(max_value, 1.0) + 1)))
    bits = next((b for b in BIT_DEPTHS if b >= need), need)
    return float(2**bits - 1)


def bit_depth_scale(paths: Iterable[str | Path]) -> float | None:
    """The one scale of a dataset's high-bit-depth images, for :func:`load_rgb`: the largest value
    over all ``paths`` rounded up by :func:`scale_for` (e.g. 4095.0 for 12-bit data in 16-bit PNGs).

    None when no image is high-bit-depth (8-bit images need no scale; their pixels are not decoded,
    so this is cheap for ordinary datasets). Files that cannot be read are skipped here (the loader
    reports them when it opens them). Cost: one decode of every high-bit-depth image.
    """
    top: float | None = None
    mode = "I;16"
    for p in paths:
        try:
            with Image.open(p) as im:
                if not is_high_depth(im):
                    continue
                mode = im.mode if im.mode == "F" else mode
                a = np.asarray(im)
        except (OSError, ImportError):  # ImportError: ultralytics' Image.open patch on an unreadable file
            continue
        if a.size:
            m = float(np.nanmax(a))
            top = m if top is None else max(top, m)
    return None if top is None else scale_for(top, mode)


def image_scale(image: Any) -> float | None:
    """The scale of one high-bit-depth image (a PIL image or a file path), by the dataset rule
    (:func:`scale_for`: its largest value rounded up to a bit depth), for a model whose training
    view held 8-bit copies made with its dataset's scale (ultralytics): the two agree whenever the
    image reaches the dataset's bit depth. None for an 8-bit image or one that cannot be read."""
    if isinstance(image, Image.Image):
        if not is_high_depth(image):
            return None
        a = np.asarray(image)
        return scale_for(float(np.nanmax(a)) if a.size else 0.0, image.mode)
    return bit_depth_scale([image])


def describe_scale(scale: float | None) -> str | None:
    """The line a training report shows for a dataset scale: e.g. ``"16-bit images scaled from
    12-bit range (0-4095 -> 0-255)"``; None when ``scale`` is None (8-bit images)."""
    if scale is None:
        return None
    if scale == 1.0:
        return "float images scaled from the 0-1 range (0-1 -> 0-255)"
    bits = round(math.log2(scale + 1))
    return f"16-bit images scaled from {bits}-bit range (0-{int(scale)} -> 0-255)"


def to_rgb(image: Image.Image, scale: float | None = None) -> Image.Image:
    """``image`` (any PIL mode) as 8-bit RGB. High-bit-depth modes (:data:`HIGH_DEPTH_MODES`) map
    ``[0, scale]`` linearly onto ``[0, 255]`` (values outside clipped); ``scale=None`` uses the
    container's full range (65535 for ``I;16``/``I``, 1.0 for ``F``). Other modes: ``convert("RGB")``.

    Raises ValueError when ``scale`` is not a positive number.
    """
    if not is_high_depth(image):
        return image if image.mode == "RGB" else image.convert("RGB")
    s = _container_max(image.mode) if scale is None else float(scale)
    if not s > 0:
        raise ValueError(f"scale must be a positive number, not {scale!r}")
    a = np.asarray(image).astype(np.float64)
    a = np.nan_to_num(a, nan=0.0)
    gray = np.clip(np.rint(a * (255.0 / s)), 0, 255).astype(np.uint8)
    return Image.fromarray(gray, mode="L").convert("RGB")


def load_rgb(path: str | Path, scale: float | None = None) -> Image.Image:
    """The image at ``path`` as an upright (EXIF orientation applied) 8-bit RGB PIL image of the
    file's size (width x height pixels, 3 channels, 0-255).

    ``scale`` is the dataset's value shown as 255 for high-bit-depth images (from
    :func:`bit_depth_scale`, the same for every image of a dataset); None uses the container's full
    range (see :func:`to_rgb`). 8-bit images ignore it.

    Raises OSError (PIL's UnidentifiedImageError included) when the file cannot be read as an image,
    ValueError for a non-positive ``scale``.
    """
    with Image.open(path) as im:
        im.load()
        upright: Any = ImageOps.exif_transpose(im)
        return to_rgb(upright, scale)
