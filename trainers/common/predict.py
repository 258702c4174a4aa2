"""The one shape of a prediction every trainer plugin returns, and drawing it on the image.

Each plugin package exposes ``load_predictor(checkpoint, *, name=None, device="cpu") -> Predictor``
and ``predict_images(checkpoint, images, **options)``; a :class:`Predictor` called with a list of
images returns one :class:`ImagePrediction` dict per image:

- ``task``: ``classify``, ``detect``, ``segment``, ``pose`` or ``obb``.
- ``predictions``: classify: the top-k ``{"class", "confidence"}``, best first; otherwise one
  ``{"class", "confidence", "box": [x1, y1, x2, y2]}`` per object (pixels of the input image; an
  oriented box's axis-aligned bounds), objects under the confidence threshold left out.
- ``plot``: the image (PIL, RGB) with the predictions drawn.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypedDict

MAX_CAPTIONS = 3  # classification: the top classes written on the image


class ImagePrediction(TypedDict):
    task: str
    predictions: list[dict[str, Any]]
    plot: Any  # PIL.Image.Image


# images (PIL images or file paths) and options (conf: 0-1, top_k, image_size: pixels) -> one per image
Predictor = Callable[..., list[ImagePrediction]]


def open_rgb(image: Any, scale: float | None = None) -> Any:
    """A PIL image in 8-bit RGB from a PIL image or an image file path; 16-bit images are scaled by
    ``scale`` (the training dataset's, :func:`trainers.common.images.bit_depth_scale`)."""
    from trainers.common.images import load_rgb, to_rgb

    return load_rgb(image, scale) if isinstance(image, str | Path) else to_rgb(image, scale)


def draw(image: Any, task: str, predictions: list[dict[str, Any]]) -> Any:
    """A copy of ``image`` with ``predictions`` drawn: the top classes as text for classify, a
    labelled rectangle per object otherwise."""
    from PIL import ImageDraw

    drawn = image.copy()
    pen = ImageDraw.Draw(drawn)
    if task == "classify":
        for i, p in enumerate(predictions[:MAX_CAPTIONS]):
            pen.text((4, 4 + 12 * i), f"{p['class']} {p['confidence']:.2f}", fill=(255, 255, 0))
        return drawn
    for p in predictions:
        x1, y1, x2, y2 = p["box"]
        pen.rectangle((x1, y1, x2, y2), outline=(255, 0, 0), width=2)
        pen.text((x1 + 2, y1 + 1), f"{p['class']} {p['confidence']:.2f}", fill=(255, 255, 0))
    return drawn


def classification(image: Any, top: list[tuple[str, float]]) -> ImagePrediction:
    """The record of one classified image from its top-k (class, probability) pairs."""
    predictions = [{"class": c, "confidence": float(p)} for c, p in top]
    return {"task": "classify", "predictions": predictions, "plot": draw(image, "classify", predictions)}


def detection(image: Any, objects: list[tuple[str, float, list[float]]], task: str = "detect") -> ImagePrediction:
    """The record of one image's objects, each (class, confidence, [x1, y1, x2, y2] in pixels)."""
    predictions = [{"class": c, "confidence": float(s), "box": [float(v) for v in box]} for c, s, box in objects]
    return {"task": task, "predictions": predictions, "plot": draw(image, task, predictions)}
