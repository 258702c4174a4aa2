"""Automatic validation splits for datasets that arrive without one.

A dataset with a train split and no val (or test) split gets one made at import: deterministic
(seeded, and independent of file order on disk), stratified by class (an image's stratum is its
first object's class for YOLO, its class folder for ImageFolder, ``background`` for an image
without objects) so every class with at least two images is in both splits. The dataset folder is
never changed: the result is a new folder of hard links (or copies) and a fresh ``data.yaml``.
"""

from __future__ import annotations

import os
import random
import shutil
from collections import defaultdict
from pathlib import Path
from typing import Any

import yaml

from core.dataset_layout import class_dirs, find_val_dir, label_path, list_images, read_data_yaml
from core.errors import DatasetError

VAL_FRACTION = 0.2  # the share of images moved to val when a dataset has none
SEED = 0


def _link(src: Path, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dest)
    except OSError:
        shutil.copy2(src, dest)


def choose_val(strata: dict[str, list[str]], fraction: float, seed: int = SEED) -> set[str]:
    """Keys to put in val: in each stratum (sorted, then shuffled with ``seed``) ``round(n * fraction)``
    of its ``n`` keys, at least one when ``n >= 2`` and never all of them. Raises DatasetError when
    there are fewer than 2 keys in all, or ``fraction`` is not in (0, 1)."""
    if not 0 < fraction < 1:
        raise DatasetError(f"val_fraction={fraction} must lie between 0 and 1 (e.g. 0.2)")
    total = sum(len(v) for v in strata.values())
    if total < 2:
        raise DatasetError(f"train has {total} image(s) and there is no val split: add images (at least 2) or a "
                           "val split")
    val: set[str] = set()
    for stratum in sorted(strata):
        keys = sorted(strata[stratum])
        random.Random(f"{seed}:{stratum}").shuffle(keys)
        n = len(keys)
        k = min(n - 1, max(1 if n >= 2 else 0, round(n * fraction)))
        val.update(keys[:k])
    return val


def needs_split(root: Path, fmt: str) -> bool:
    """Whether the dataset at ``root`` (``yolo`` or ``imagefolder``) has a train split and neither val nor test."""
    if fmt == "imagefolder":
        return (root / "train").is_dir() and find_val_dir(root) is None
    try:
        layout = read_data_yaml(root)
    except DatasetError:
        return False  # validation reports the file
    return "train" in layout.splits and not ({"val", "test"} & layout.splits.keys())


def auto_split(root: Path, fmt: str, dest: Path, fraction: float = VAL_FRACTION, seed: int = SEED) -> tuple[Path, dict[str, Any]]:
    """Copy (as links) the dataset at ``root`` into ``dest`` with a val split made from train.

    Returns (``dest``, a record of what was done: ``{"val_fraction", "seed", "stratified_by",
    "train", "val"}`` with image counts). Raises DatasetError when train has fewer than 2 images."""
    if fmt == "imagefolder":
        strata = {c.name: [p.relative_to(root).as_posix() for p in list_images(c, root)] for c in class_dirs(root / "train")}
        val = choose_val(strata, fraction, seed)
        for keys in strata.values():
            for rel in keys:
                parts = Path(rel).parts  # train/<class>/...
                split = "val" if rel in val else "train"
                _link(root / rel, dest / split / Path(*parts[1:]))
        stratified_by = "class folder"
    else:
        layout = read_data_yaml(root)
        images: dict[str, tuple[Path, Path]] = {}  # key -> (image, the train entry it came from)
        entries = layout.splits["train"]
        for entry in entries:
            for img in list_images(entry, root):
                # one folder: names as inside it; else the path in the dataset, flattened ("images__a__0.jpg"):
                # two folders may share names, and a nested images/ would confuse YOLO's label rule
                if entry.is_dir() and len(entries) == 1:
                    key = os.path.relpath(img, entry)
                else:
                    key = Path(os.path.relpath(img, root)).as_posix().replace("/", "__")
                images[key] = (img, entry)
        strata: dict[str, list[str]] = defaultdict(list)
        for key, (img, _) in images.items():
            lbl = label_path(img)
            first = ""
            if lbl.is_file():
                first = next((line.split()[0] for line in lbl.read_text(errors="replace").splitlines() if line.split()), "")
            strata[f"class {first}" if first else "background"].append(key)
        val = choose_val(strata, fraction, seed)
        for key, (img, _) in images.items():
            split = "val" if key in val else "train"
            out = dest / "images" / split / key
            _link(img, out)
            if label_path(img).is_file():
                _link(label_path(img), label_path(out))
        data = {k: v for k, v in layout.data.items() if k not in ("path", "train", "val", "test", "download")}
        data = {"path": ".", "train": "images/train", "val": "images/val", **data, "names": dict(enumerate(layout.names))}
        (dest / "data.yaml").write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")
        stratified_by = "first object's class"
    n_val = len(val)
    n_all = sum(len(v) for v in strata.values())
    return dest, {"val_fraction": fraction, "seed": seed, "stratified_by": stratified_by,
                  "train": n_all - n_val, "val": n_val}


def resplit(root: Path, fmt: str, dest: Path, fraction: float, seed: int = SEED) -> tuple[Path, dict[str, Any]]:
    """The dataset at ``root`` (``yolo`` or ``imagefolder``), whose val split vtp made at import, split
    again with ``fraction``: its train and val images are put together (links under ``dest/merged``)
    and :func:`auto_split` makes the split, into ``dest/split``, seeded and stratified as at import.

    Returns (the new folder, the split's record as :func:`auto_split` gives it). Raises DatasetError
    when the dataset has no train or val split to merge."""
    merged = dest / "merged"
    if fmt == "imagefolder":
        val_dir = find_val_dir(root)
        if not (root / "train").is_dir() or val_dir is None:
            raise DatasetError(f"{root}: no train/ and val/ folders to split again")
        for split_dir in (root / "train", val_dir):
            for c in class_dirs(split_dir):
                for img in list_images(c, root):
                    out = merged / "train" / c.name / img.relative_to(c)
                    if out.exists():  # the same name in train and val: keep both
                        out = out.with_name(f"{split_dir.name}__{out.name}")
                    _link(img, out)
    else:
        layout = read_data_yaml(root)
        entries = [e for split in ("train", "val") for e in layout.splits.get(split, [])]
        if "train" not in layout.splits or "val" not in layout.splits:
            raise DatasetError(f"{layout.yaml_file}: no train and val splits to split again")
        for entry in entries:
            for img in list_images(entry, root):
                out = merged / "images" / "train" / Path(os.path.relpath(img, root)).as_posix().replace("/", "__")
                _link(img, out)
                if label_path(img).is_file():
                    _link(label_path(img), label_path(out))
        data = {k: v for k, v in layout.data.items() if k not in ("path", "train", "val", "test", "download")}
        data = {"path": ".", "train": "images/train", **data, "names": dict(enumerate(layout.names))}
        merged.mkdir(parents=True, exist_ok=True)
        (merged / "data.yaml").write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return auto_split(merged, fmt, dest / "split", fraction, seed)
