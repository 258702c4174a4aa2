"""Recognise a local dataset's layout, convert COCO to YOLO, and hand trainers a :class:`DatasetInfo`.

Layouts: ``yolo`` (a ``data.yaml``), ``coco`` (COCO instances JSON, converted to YOLO on the way
in) and ``imagefolder`` (``train/<class>/*`` and ``val/<class>/*``).

A dataset's ``data.yaml`` comes from whoever made the dataset, so it is read with
``yaml.safe_load`` and its ``download:`` key is dropped: Ultralytics would run that key as a shell
command or as Python when a split is missing. The trainers get a fresh ``data.yaml`` with an
absolute ``path``, because Ultralytics resolves a relative ``path`` against the working directory
(or its datasets folder), never against the yaml's own folder.

Datasets are closed worlds (docs/security.md, "Datasets"): every path a dataset names (a split
entry, a line of a ``.txt`` split list, ``path:``, a COCO ``file_name``) must stay inside the dataset
folder, symlinks followed; anything else is refused with one message that does not depend on
whether the named file exists. YAML is read with anchors and aliases refused and at most
``MAX_YAML_BYTES``; at most ``MAX_CLASSES`` classes. Trainers never see the dataset folder itself:
:func:`prepare_local` builds a fresh *view* of it in the run's work folder (real folders, one symlink
per image and label file), so the label caches Ultralytics writes next to ``labels/<split>`` (pickles,
loaded with ``allow_pickle``) are written, and read back, only inside this run's work folder.

What a layout is (image suffixes, split names, val-folder aliases, the data.yaml parser, the
closed-world path check) lives in :mod:`core.dataset_layout`; its names are re-exported here.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path
from typing import Any

import yaml
from PIL import Image

from core.contracts import DatasetInfo
from core.dataset_layout import (  # noqa: F401 - re-exported: the layout names other modules know from here
    IMAGE_SUFFIXES,
    MAX_CLASSES,
    MAX_YAML_BYTES,
    OUTSIDE,
    SPLITS,
    VAL_DIRS,
    YAML_NAMES,
    DataYaml,
    class_dirs,
    find_data_yaml,
    find_val_dir,
    is_image,
    label_path,
    list_images,
    load_yaml,
    read_data_yaml,
    read_list,
    split_of,
    within,
)
from core.errors import DatasetError

log = logging.getLogger("vtp")

TASK_FORMATS = {"detect": "yolo", "segment": "yolo", "pose": "yolo", "obb": "yolo", "classify": "imagefolder"}
LAYOUTS = (
    "yolo: data.yaml (or data.yml) at the top, with images/<split>/*.jpg and labels/<split>/*.txt; "
    "coco: annotations/*.json (or *.json at the top) with images, annotations and categories; "
    "imagefolder: train/<class>/*.jpg and val/<class>/*.jpg (valid/, validation/ or test/ also work as val)"
)
_EXPECTED = {
    "yolo": "a YOLO dataset (data.yaml with images/<split>/ and labels/<split>/) or a COCO dataset",
    "imagefolder": "an ImageFolder dataset (train/<class>/*.jpg and val/<class>/*.jpg)",
}


def _is_coco_json(p: Path) -> bool:
    try:
        data = json.loads(p.read_text())
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and {"images", "annotations", "categories"} <= data.keys()


def coco_jsons(root: Path) -> list[Path]:
    """COCO instance files: annotations/*.json, *.json at the top, or <split>/_annotations.coco.json."""
    found = [*sorted((root / "annotations").glob("*.json")), *sorted(root.glob("*.json"))]
    found += sorted(root.glob("*/_annotations.coco.json"))
    return [p for p in dict.fromkeys(found) if _is_coco_json(p)]


def _has_class_folders(d: Path | None) -> bool:
    return d is not None and d.is_dir() and any(any(map(is_image, c.iterdir())) for c in class_dirs(d))


def detect_format(root: Path) -> str:
    """Return ``yolo``, ``coco`` or ``imagefolder`` for the dataset folder ``root``."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"dataset folder {root} does not exist: check the path or download the dataset first")
    if find_data_yaml(root) is not None:
        return "yolo"
    if coco_jsons(root):
        return "coco"
    if _has_class_folders(root / "train") and not (root / "train" / "labels").is_dir():
        return "imagefolder"  # a missing or empty val/ is reported by validate and prepare_local
    seen = ", ".join(sorted(p.name + ("/" if p.is_dir() else "") for p in root.iterdir())[:12]) or "nothing"
    raise DatasetError(f"{root} is not a dataset layout vtp reads (it holds: {seen}). Accepted layouts: {LAYOUTS}")


# --------------------------------------------------------------------------------------------- YOLO


YoloLayout = DataYaml  # the name the rest of vtp knew it by


def read_yolo(root: Path) -> DataYaml:
    """Read ``root``'s data.yaml without executing or fetching anything (see
    :func:`core.dataset_layout.read_data_yaml`)."""
    return read_data_yaml(root)


VIEW = "dataset"  # the trainers' view of the dataset, under the run's work folder


def _fresh_view(workdir: Path) -> Path:
    """An empty ``workdir/dataset``: whatever an earlier prepare left there (label caches included)
    is removed, so every cache file in the view was written by this run."""
    view = workdir / VIEW
    if view.is_symlink() or view.is_file():
        view.unlink()
    elif view.exists():
        shutil.rmtree(view)
    view.mkdir(parents=True)
    return view


def _link(src: Path, dest: Path) -> None:
    if dest.exists() or dest.is_symlink():
        return
    dest.parent.mkdir(parents=True, exist_ok=True)
    os.symlink(os.path.realpath(src), dest)


def outside_message(where: str, split: str, entry: str) -> str:
    return f"{where}: {split} entry {entry!r} {OUTSIDE}"


def _prepare_yolo(root: Path, task: str, workdir: Path) -> DatasetInfo:
    layout = read_yolo(root)
    for note in layout.notes:
        log.warning(note)
    if layout.outside:
        split, entry = layout.outside[0]
        raise DatasetError(outside_message(str(layout.yaml_file), split, entry))
    if "val" not in layout.splits and "test" in layout.splits:
        layout.splits["val"] = layout.splits.pop("test")
        layout.notes.append(f"{layout.yaml_file.name}: no val split; using test as val")
    for split in ("train", "val"):
        if split not in layout.splits:
            raise DatasetError(f"{layout.yaml_file}: no `{split}:` entry; add e.g. `{split}: images/{split}`")
    for split, entries in layout.splits.items():
        for p in entries:
            if not p.exists():
                raise DatasetError(f"{layout.yaml_file}: {split} split {p} does not exist; fix the `{split}:` entry")
            if p.is_file():
                refused = read_list(p, root)[1]
                if refused:
                    n, line = refused[0]
                    raise DatasetError(outside_message(f"{p}:{n}", split, line))
    workdir.mkdir(parents=True, exist_ok=True)
    view = _fresh_view(workdir)
    out: dict[str, Any] = {"path": str(view)}
    counts: dict[str, int] = {}
    for split, entries in layout.splits.items():
        rel: list[str] = []
        images_total = 0
        for p in entries:
            images = list_images(p, root)
            images_total += len(images)
            target = view / os.path.relpath(p, root)
            for img in images:
                dest = view / os.path.relpath(img, root)
                _link(img, dest)
                lbl = label_path(img)
                if within(root, os.path.relpath(lbl, root)) is not None and lbl.is_file():
                    _link(lbl, label_path(dest))
            if p.is_dir():
                target.mkdir(parents=True, exist_ok=True)
            else:  # a list: rewritten with the view's absolute paths (ultralytics takes them as given)
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text("".join(f"{view / os.path.relpath(img, root)}\n" for img in images))
            rel.append(os.path.relpath(p, root))
        out[split] = rel[0] if len(rel) == 1 else rel
        counts[split] = images_total
    out["names"] = dict(enumerate(layout.names))
    for key in ("kpt_shape", "flip_idx", "kpt_names", "channels"):
        if key in layout.data:
            out[key] = layout.data[key]
    kpt_shape = out.get("kpt_shape")
    if task == "pose" and not kpt_shape:
        raise DatasetError(f"{layout.yaml_file}: pose needs `kpt_shape: [K, 3]` (K keypoints, x y visible); add it")
    data_yaml = workdir / "data.yaml"
    header = "".join(f"# {n}\n" for n in layout.notes)
    data_yaml.write_text(header + yaml.safe_dump(out, sort_keys=False))
    return DatasetInfo(view, "yolo", task, layout.names, counts, data_yaml, list(kpt_shape) if kpt_shape else None)


def _prepare_imagefolder(root: Path, task: str, workdir: Path) -> DatasetInfo:
    """Trainers read ``view/train`` and ``view/val``: a view of real folders in the work folder with
    one symlink per image (inside the dataset), whatever the val folder is called in the dataset."""
    val = find_val_dir(root)
    if not (root / "train").is_dir() or val is None:
        raise DatasetError(f"{root}: an ImageFolder dataset needs train/ and val/ folders of class folders")
    classes = [c.name for c in class_dirs(root / "train")]
    if len(classes) > MAX_CLASSES:
        raise DatasetError(f"{root}: more than {MAX_CLASSES} class folders; vtp trains at most {MAX_CLASSES} classes")
    if val.name != "val":
        log.info("%s: using %s/ as the val split", root, val.name)
    workdir.mkdir(parents=True, exist_ok=True)
    view = _fresh_view(workdir)
    counts: dict[str, int] = {}
    for split, d in (("train", root / "train"), ("val", val)):
        counts[split] = 0
        for c in class_dirs(d):
            (view / split / c.name).mkdir(parents=True, exist_ok=True)
            for img in list_images(c, root):
                _link(img, view / split / c.name / img.relative_to(c))
                counts[split] += 1
    return DatasetInfo(view, "imagefolder", task, classes, counts)


def prepare_local(root: Path, task: str, workdir: Path) -> DatasetInfo:
    """Describe the local dataset at ``root`` for the trainers of ``task``; files go to ``workdir``.

    COCO datasets are converted to YOLO under ``workdir/yolo`` first (detect and segment only).
    """
    if task not in TASK_FORMATS:
        raise DatasetError(f"task {task!r} is unknown: use one of {', '.join(TASK_FORMATS)}")
    root, workdir = Path(root).resolve(), Path(workdir).resolve()
    fmt = detect_format(root)
    expected = TASK_FORMATS[task]
    if fmt == "coco" and task in ("detect", "segment"):
        root, fmt = coco_to_yolo(root, workdir / "yolo", task), "yolo"
    if fmt != expected:
        others = [t for t, f in TASK_FORMATS.items() if f == fmt or (fmt == "coco" and t in ("detect", "segment"))]
        raise DatasetError(
            f"task {task!r} needs {_EXPECTED[expected]}, but {root} is a {fmt} dataset: "
            f"use task {' or '.join(others)} with this dataset, or point {task} at {_EXPECTED[expected]}"
        )
    if fmt == "yolo":
        return _prepare_yolo(root, task, workdir)
    return _prepare_imagefolder(root, task, workdir)


# --------------------------------------------------------------------------------------------- COCO


def _split_name(p: Path) -> str:
    stem = p.parent.name if p.name == "_annotations.coco.json" else p.stem.lower().removeprefix("instances_")
    return split_of(stem) or stem


def _polygon(seg: list, w: float, h: float) -> list[float] | None:
    """The largest polygon of a list-of-polygons segmentation, normalized (YOLO has one per object)."""
    polys = [s for s in seg if isinstance(s, list) and len(s) >= 6]
    if not polys:
        return None

    def area(s: list) -> float:
        xs, ys = s[0::2], s[1::2]
        return abs(sum(xs[i] * ys[i - 1] - xs[i - 1] * ys[i] for i in range(len(xs)))) / 2

    best = max(polys, key=area)
    return [min(1.0, max(0.0, v / (w if i % 2 == 0 else h))) for i, v in enumerate(best)]


def _find_image(src: Path, json_file: Path, split: str, file_name: str) -> Path | None:
    """The image a COCO ``file_name`` names, searched inside ``src`` only (closed world)."""
    for base in (src / "images" / split, src, json_file.parent, src / "images", src / split):
        p = within(src, file_name, base)
        if p is not None and p.is_file():
            return p
    return None


def coco_to_yolo(src: Path, dest: Path, task: str = "detect") -> Path:
    """Convert COCO instances JSON (one file per split) under ``src`` to a YOLO dataset in ``dest``.

    Classes are the categories sorted by id, renumbered 0..N-1. Crowd annotations are skipped;
    for ``segment``, RLE masks are skipped with a warning and multi-part objects keep their
    largest polygon. Nothing is written when any image or box is wrong; the DatasetError lists
    every problem.
    """
    if task not in ("detect", "segment"):
        raise DatasetError(f"COCO converts to detect or segment datasets, not {task!r}")
    src, dest = Path(src).resolve(), Path(dest)
    files = coco_jsons(src)
    by_split = {_split_name(f): f for f in files}
    if not {"train", "val"} <= by_split.keys():
        raise DatasetError(
            f"{src}: COCO needs a train and a val JSON (e.g. annotations/instances_train.json and "
            f"annotations/instances_val.json); found {', '.join(f.name for f in files) or 'none'}"
        )
    splits = {s: json.loads(by_split[s].read_text()) for s in SPLITS if s in by_split}
    if max(len(d["categories"]) for d in splits.values()) > MAX_CLASSES:
        raise DatasetError(f"{src}: more than {MAX_CLASSES} categories; vtp trains at most {MAX_CLASSES} classes")
    cats: dict[int, str] = {}
    for s, d in splits.items():
        for c in d["categories"]:
            if cats.setdefault(int(c["id"]), str(c["name"])) != str(c["name"]):
                raise DatasetError(f"{by_split[s]}: category id {c['id']} is named differently across splits")
    index = {cid: i for i, cid in enumerate(sorted(cats))}
    problems: list[str] = []
    skipped_rle = 0
    plan: list[tuple[Path, Path, list[str]]] = []
    for split, d in splits.items():
        jf = by_split[split]
        anns: dict[int, list[dict]] = {}
        for a in d["annotations"]:
            anns.setdefault(a["image_id"], []).append(a)
        used: set[str] = set()
        for im in d["images"]:
            img = _find_image(src, jf, split, str(im["file_name"]))
            if img is None:  # one message for a missing file and a path outside: nothing outside is revealed
                problems.append(f"{jf.name}: image {im['file_name']!r} (id {im['id']}) not found in the dataset "
                                "(file_name must name a file inside the dataset folder)")
                continue
            w, h = im.get("width"), im.get("height")
            if not w or not h:
                with Image.open(img) as pil:
                    w, h = pil.size
            name = img.name if img.name not in used else f"{im['id']}_{img.name}"
            used.add(name)
            lines: list[str] = []
            for a in anns.get(im["id"], []):
                if a.get("iscrowd"):
                    continue
                where = f"{jf.name}: annotation {a.get('id')} on {im['file_name']!r}"
                if a.get("category_id") not in index:
                    problems.append(f"{where}: category_id {a.get('category_id')} is not in categories")
                    continue
                bbox = a.get("bbox")
                if not (isinstance(bbox, list) and len(bbox) == 4 and bbox[2] > 0 and bbox[3] > 0):
                    problems.append(f"{where}: bad bbox {bbox!r} (need [x, y, width, height] with width, height > 0)")
                    continue
                x0, y0 = max(0.0, bbox[0]), max(0.0, bbox[1])
                x1, y1 = min(float(w), bbox[0] + bbox[2]), min(float(h), bbox[1] + bbox[3])
                if x1 <= x0 or y1 <= y0:
                    problems.append(f"{where}: bbox {bbox!r} lies outside the {w}x{h} image")
                    continue
                cls = index[a["category_id"]]
                if task == "detect":
                    vals = [(x0 + x1) / 2 / w, (y0 + y1) / 2 / h, (x1 - x0) / w, (y1 - y0) / h]
                else:
                    seg = a.get("segmentation")
                    if not isinstance(seg, list):
                        skipped_rle += 1
                        continue
                    vals = _polygon(seg, w, h)
                    if vals is None:
                        problems.append(f"{where}: segmentation has no polygon of 3 or more points")
                        continue
                lines.append(" ".join([str(cls), *(f"{v:.6f}" for v in vals)]))
            plan.append((img, dest / "images" / split / name, lines))
    if problems:
        shown = "\n  ".join(problems[:50]) + (f"\n  ... and {len(problems) - 50} more" if len(problems) > 50 else "")
        raise DatasetError(
            f"COCO dataset {src} has {len(problems)} problem(s); fix them and convert again:\n  {shown}", problems
        )
    if skipped_rle:
        log.warning("%s: skipped %d RLE (mask) segmentations; only polygon segmentations convert", src, skipped_rle)
    for img, out, lines in plan:
        out.parent.mkdir(parents=True, exist_ok=True)
        lbl = label_path(out)
        lbl.parent.mkdir(parents=True, exist_ok=True)
        if out.exists():
            out.unlink()
        try:
            os.link(img, out)  # same filesystem: no copy
        except OSError:
            shutil.copy2(img, out)
        lbl.write_text("".join(f"{ln}\n" for ln in lines))
    data = {"path": ".", **{s: f"images/{s}" for s in splits}, "names": {index[c]: cats[c] for c in sorted(cats)}}
    (dest / "data.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    return dest
