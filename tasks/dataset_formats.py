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
from dataclasses import dataclass, field
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

COCO_TASKS = ("detect", "segment", "pose")  # what a COCO dataset converts to
TASK_FORMATS = {"detect": "yolo", "segment": "yolo", "pose": "yolo", "obb": "yolo", "classify": "imagefolder"}
LAYOUTS = (
    "yolo: data.yaml (or data.yml) at the top, with images/<split>/*.jpg and labels/<split>/*.txt; "
    "coco: annotations/*.json (or *.json at the top) with images, annotations and categories; "
    "imagefolder: train/<class>/*.jpg and val/<class>/*.jpg (valid/, validation/ or test/ also work as val); "
    "Pascal VOC (Annotations/*.xml, JPEGImages/); CVAT YOLO 1.1 / darknet (obj.names, obj.data); "
    "LabelMe (one .json per image); Label Studio (JSON export, or classes.txt with images/ and labels/)"
)
_EXPECTED = {
    "yolo": "a YOLO dataset (data.yaml with images/<split>/ and labels/<split>/) or a COCO dataset",
    "imagefolder": "an ImageFolder dataset (train/<class>/*.jpg and val/<class>/*.jpg)",
}


def _read_json(p: Path) -> Any:  # noqa: ANN401 - whatever the file holds
    """A JSON file's content (UTF-8, -16 or -32, as JSON allows), or None when it is not JSON."""
    try:
        return json.loads(p.read_bytes())
    except (OSError, ValueError):
        return None


def _is_coco_json(p: Path) -> bool:
    data = _read_json(p)
    return isinstance(data, dict) and {"images", "annotations", "categories"} <= data.keys()


def coco_jsons(root: Path) -> list[Path]:
    """COCO annotation files: annotations/*.json, *.json at the top, or <split>/_annotations.coco.json
    (Roboflow). Captions files (no categories) are not annotation files."""
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


def normalize(root: Path, task: str | None, dest: Path, notes: list[str], *,
              val_fraction: float | None = None) -> tuple[Path, str, str, dict[str, Any] | None]:
    """The dataset at ``root`` in a layout the trainers read, and what was done to get there.

    COCO is converted (:func:`coco_to_yolo`), and so are the exports :mod:`tasks.converters` knows
    (Pascal VOC, CVAT YOLO 1.1 / darknet, LabelMe, Label Studio), into folders under ``dest``; a
    dataset without a val (or test) split gets one (:func:`tasks.splits.auto_split`, ``val_fraction``
    of train, default 0.2). ``root`` itself is never changed. Returns (folder, ``yolo`` or
    ``imagefolder``, task, the automatic split's record or None); ``notes`` gets a sentence per
    decision. Raises DatasetError for a folder in no layout vtp reads, or a broken export."""
    from tasks import converters, splits

    try:
        fmt = detect_format(root)
    except DatasetError:
        foreign = converters.detect(root)
        if foreign is None:
            raise
        task = task or "detect"
        root, more = converters.convert(root, foreign, dest / "converted", task)
        notes.extend(more)
        fmt = "yolo"
    if fmt == "coco":
        task = task or coco_task(root)
        root, fmt = coco_to_yolo(root, dest / "coco", task=task, notes=notes), "yolo"
    split = None
    if splits.needs_split(root, fmt):
        fraction = splits.VAL_FRACTION if val_fraction is None else val_fraction
        root, split = splits.auto_split(root, fmt, dest / "split", fraction)
        notes.append(f"no validation split: made one from train ({split['val']} of {split['train'] + split['val']} "
                     f"images, val_fraction {fraction}, seed {split['seed']}, stratified by {split['stratified_by']})")
    return root, fmt, task or ("classify" if fmt == "imagefolder" else ""), split


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


@dataclass
class _ViewOptions:
    """What a run's view changes (see :func:`prepare_local`)."""

    classes: list[str] | None = None
    eight_bit: bool = False
    notes: list[str] = field(default_factory=list)


def _chosen(classes: list[str] | None, names: list[str], where: str) -> dict[int, int] | None:
    """Old class id -> new class id for TrainSpec.classes (None: all classes, unchanged); DatasetError
    naming the dataset's classes for a name it does not have."""
    if not classes:
        return None
    unknown = [c for c in classes if c not in names]
    if unknown:
        from core.spec import suggest

        raise DatasetError(f"classes: {unknown[0]!r} is not a class of {where}; its classes are "
                           f"{', '.join(names[:50])}{' ...' if len(names) > 50 else ''}." + suggest(unknown[0], names))
    return {names.index(c): i for i, c in enumerate(classes)}


def _keep_labels(src: Path, dest: Path, mapping: dict[int, int]) -> tuple[int, int]:
    """Write ``src``'s label rows whose class is in ``mapping`` to ``dest``, renumbered; returns
    (rows kept, rows left out). Rows whose class is not a number are kept as they are (the checker
    reported them)."""
    kept, dropped = [], 0
    for line in src.read_text(encoding="utf-8", errors="replace").splitlines():
        parts = line.split()
        if not parts:
            continue
        try:
            cls = int(float(parts[0]))
        except ValueError:
            kept.append(line)
            continue
        if cls in mapping:
            kept.append(" ".join([str(mapping[cls]), *parts[1:]]))
        else:
            dropped += 1
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text("".join(f"{row}\n" for row in kept), encoding="utf-8")
    return len(kept), dropped


def _eight_bit_scale(images: list[Path], opts: _ViewOptions) -> float | None:
    """The dataset scale when the view must hold 8-bit copies of its high-bit-depth images, else None."""
    if not opts.eight_bit:
        return None
    from trainers.common.images import bit_depth_scale, describe_scale

    scale = bit_depth_scale(images)
    if scale is not None:
        opts.notes.append(f"{describe_scale(scale)} for training (the same scale for every image)")
    return scale


def _place_image(img: Path, dest: Path, scale: float | None) -> None:
    """``dest`` shows ``img``: a symlink, or an 8-bit copy scaled by ``scale`` for a high-bit-depth image."""
    if scale is not None:
        from trainers.common.images import is_high_depth, load_rgb

        try:
            with Image.open(img) as im:
                high = is_high_depth(im)
        except (OSError, ImportError):
            high = False  # unreadable: the checker reported it; the trainer skips it as before
        if high:
            dest.parent.mkdir(parents=True, exist_ok=True)
            load_rgb(img, scale).save(dest)
            return
    _link(img, dest)


def _prepare_yolo(root: Path, task: str, workdir: Path, opts: _ViewOptions | None = None) -> DatasetInfo:
    opts = opts or _ViewOptions()
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
    mapping = _chosen(opts.classes, list(layout.names), f"dataset {root.name}")
    workdir.mkdir(parents=True, exist_ok=True)
    view = _fresh_view(workdir)
    out: dict[str, Any] = {"path": str(view)}
    counts: dict[str, int] = {}
    listed = {(split, p): list_images(p, root) for split, entries in layout.splits.items() for p in entries}
    scale = _eight_bit_scale([img for images in listed.values() for img in images], opts)
    kept_rows, dropped_rows = 0, 0
    for split, entries in layout.splits.items():
        rel: list[str] = []
        images_total = 0
        for p in entries:
            images = listed[(split, p)]
            images_total += len(images)
            target = view / os.path.relpath(p, root)
            for img in images:
                dest = view / os.path.relpath(img, root)
                _place_image(img, dest, scale)
                lbl = label_path(img)
                if within(root, os.path.relpath(lbl, root)) is not None and lbl.is_file():
                    if mapping is None:
                        _link(lbl, label_path(dest))
                    else:
                        kept, dropped = _keep_labels(lbl, label_path(dest), mapping)
                        kept_rows, dropped_rows = kept_rows + kept, dropped_rows + dropped
            if p.is_dir():
                target.mkdir(parents=True, exist_ok=True)
            else:  # a list: rewritten with the view's absolute paths (ultralytics takes them as given)
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text("".join(f"{view / os.path.relpath(img, root)}\n" for img in images))
            rel.append(os.path.relpath(p, root))
        out[split] = rel[0] if len(rel) == 1 else rel
        counts[split] = images_total
    names = list(opts.classes) if mapping is not None else list(layout.names)
    if mapping is not None:
        opts.notes.append(f"classes: training on {len(names)} of the dataset's {len(layout.names)} classes "
                          f"({', '.join(names)}); {dropped_rows} objects of other classes left out of the labels "
                          f"({kept_rows} kept), their images kept as background")
    out["names"] = dict(enumerate(names))
    for key in ("kpt_shape", "flip_idx", "kpt_names", "channels"):
        if key in layout.data:
            out[key] = layout.data[key]
    kpt_shape = out.get("kpt_shape")
    if task == "pose" and not kpt_shape:
        raise DatasetError(f"{layout.yaml_file}: pose needs `kpt_shape: [K, 3]` (K keypoints, x y visible); add it")
    data_yaml = workdir / "data.yaml"
    header = "".join(f"# {n}\n" for n in layout.notes)
    data_yaml.write_text(header + yaml.safe_dump(out, sort_keys=False))
    return DatasetInfo(view, "yolo", task, names, counts, data_yaml, list(kpt_shape) if kpt_shape else None)


def _prepare_imagefolder(root: Path, task: str, workdir: Path, opts: _ViewOptions | None = None) -> DatasetInfo:
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
    opts = opts or _ViewOptions()
    if _chosen(opts.classes, classes, f"dataset {root.name}") is not None:
        opts.notes.append(f"classes: training on {len(opts.classes or [])} of the dataset's {len(classes)} classes "
                          f"({', '.join(opts.classes or [])}); the other class folders are left out")
        classes = list(opts.classes or [])
    workdir.mkdir(parents=True, exist_ok=True)
    view = _fresh_view(workdir)
    counts: dict[str, int] = {}
    listed = {(split, c): list_images(c, root) for split, d in (("train", root / "train"), ("val", val))
              for c in class_dirs(d) if not opts.classes or c.name in classes}
    scale = _eight_bit_scale([img for images in listed.values() for img in images], opts)
    for (split, c), images in listed.items():
        counts[split] = counts.get(split, 0)
        (view / split / c.name).mkdir(parents=True, exist_ok=True)
        for img in images:
            _place_image(img, view / split / c.name / img.relative_to(c), scale)
            counts[split] += 1
    for split in ("train", "val"):
        counts.setdefault(split, 0)
    return DatasetInfo(view, "imagefolder", task, classes, counts)


def prepare_local(root: Path, task: str, workdir: Path, *, classes: list[str] | None = None,
                  eight_bit: bool = False, notes: list[str] | None = None) -> DatasetInfo:
    """Describe the local dataset at ``root`` for the trainers of ``task``; files go to ``workdir``.

    COCO datasets are converted to YOLO under ``workdir/yolo`` first (detect, segment and pose).
    ``classes``: train on these class names only (TrainSpec.classes): the view's labels keep just
    their objects, renumbered in this order (images left without objects stay, as background), and a
    classification view holds just these class folders. ``eight_bit``: the view holds 8-bit copies of
    high-bit-depth images, scaled by the dataset's bit depth
    (:func:`trainers.common.images.bit_depth_scale`), for trainers whose reader cannot scale them.
    ``notes`` gets a sentence for each. Raises DatasetError for a class the dataset does not have.
    """
    if task not in TASK_FORMATS:
        raise DatasetError(f"task {task!r} is unknown: use one of {', '.join(TASK_FORMATS)}")
    root, workdir = Path(root).resolve(), Path(workdir).resolve()
    fmt = detect_format(root)
    expected = TASK_FORMATS[task]
    if fmt == "coco" and task in COCO_TASKS:
        root, fmt = coco_to_yolo(root, workdir / "yolo", task), "yolo"
    if fmt != expected:
        others = [t for t, f in TASK_FORMATS.items() if f == fmt or (fmt == "coco" and t in COCO_TASKS)]
        raise DatasetError(
            f"task {task!r} needs {_EXPECTED[expected]}, but {root} is a {fmt} dataset: "
            f"use task {' or '.join(others)} with this dataset, or point {task} at {_EXPECTED[expected]}"
        )
    opts = _ViewOptions(classes, eight_bit, notes if notes is not None else [])
    if fmt == "yolo":
        return _prepare_yolo(root, task, workdir, opts)
    return _prepare_imagefolder(root, task, workdir, opts)


# --------------------------------------------------------------------------------------------- COCO


# COCO's own file-name prefixes: instances_train2017.json, person_keypoints_val2017.json, ...
COCO_PREFIXES = ("instances_", "person_keypoints_", "keypoints_", "panoptic_", "stuff_", "captions_")


def _split_token(p: Path) -> str:
    """The split part of a COCO file's name: ``train2017`` for ``instances_train2017.json``,
    ``valid`` for Roboflow's ``valid/_annotations.coco.json``."""
    if p.name == "_annotations.coco.json":
        return p.parent.name
    stem = p.stem.lower()
    return next((stem.removeprefix(pre) for pre in COCO_PREFIXES if stem.startswith(pre)), stem)


def _split_name(p: Path) -> str:
    token = _split_token(p)
    return split_of(token) or token


def coco_kind(data: dict) -> str:
    """``keypoints`` when the file's categories define keypoints (COCO's person_keypoints files),
    else ``instances`` (boxes, polygons, masks)."""
    cats = data.get("categories") or []
    return "keypoints" if any(isinstance(c, dict) and c.get("keypoints") for c in cats) else "instances"


def coco_task(root: Path) -> str:
    """The task a COCO dataset's files are for when none is given: ``pose`` when every annotation
    file defines keypoints, else ``detect``."""
    files = coco_jsons(root)
    kinds = {coco_kind(_read_json(f)) for f in files}
    return "pose" if kinds == {"keypoints"} else "detect"


def select_coco_files(src: Path, task: str) -> dict[str, Path]:
    """split -> the one COCO file for it and ``task``.

    Several files for one split (the official COCO download has instances_, person_keypoints_ and
    captions_ files) are told apart by their kind: keypoint files for pose, the others for detect
    and segment. Two candidates left for one split is an error that names both: vtp never picks one
    silently. Raises DatasetError when there is no train or val file."""
    files = coco_jsons(src)
    groups: dict[str, list[Path]] = {}
    for f in files:
        groups.setdefault(_split_name(f), []).append(f)
    want = "keypoints" if task == "pose" else "instances"
    chosen: dict[str, Path] = {}
    for split, candidates in groups.items():
        if len(candidates) > 1:
            candidates = [f for f in candidates if coco_kind(_read_json(f)) == want] or candidates
        if len(candidates) > 1:
            names = " and ".join(f.relative_to(src).as_posix() for f in candidates)
            raise DatasetError(f"{src}: {len(candidates)} COCO files for the {split} split ({names}) and no rule to "
                               "choose: keep one annotation file per split, or move the other out of the dataset")
        chosen[split] = candidates[0]
    if task == "pose" and not any(coco_kind(_read_json(f)) == "keypoints" for f in chosen.values()):
        raise DatasetError(f"{src}: pose needs COCO keypoint annotations (person_keypoints_*.json, categories with "
                           "`keypoints`); these files have none: use task detect or segment")
    if not {"train", "val"} <= chosen.keys():
        raise DatasetError(
            f"{src}: COCO needs a train and a val JSON (e.g. annotations/instances_train.json and "
            f"annotations/instances_val.json); found {', '.join(f.name for f in files) or 'none'}"
        )
    return {s: chosen[s] for s in SPLITS if s in chosen}


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


def _rle_polygon(rle: dict, w: int, h: int) -> list[list[float]] | None:
    """An RLE segmentation (COCO's compressed string or uncompressed list ``counts``) as a
    list-of-polygons in pixels: the outer outline of each part of the mask (pycocotools decodes,
    OpenCV traces). None when the mask is empty or its ``size`` is not the image's [h, w]."""
    import cv2
    import numpy as np
    from pycocotools import mask as mask_utils

    size, counts = rle.get("size"), rle.get("counts")
    if not (isinstance(size, list) and len(size) == 2 and [int(v) for v in size] == [h, w]) or counts is None:
        return None
    try:
        encoded = mask_utils.frPyObjects(rle, h, w) if isinstance(counts, list) else \
            {"size": [h, w], "counts": counts.encode() if isinstance(counts, str) else counts}
        mask = mask_utils.decode(encoded)
    except (TypeError, ValueError):
        return None
    contours, _ = cv2.findContours(np.ascontiguousarray(mask.astype(np.uint8)), cv2.RETR_EXTERNAL,
                                   cv2.CHAIN_APPROX_SIMPLE)
    polygons = [c.reshape(-1).astype(float).tolist() for c in contours if len(c) >= 3]
    return polygons or None


def _find_image(src: Path, json_file: Path, split: str, file_name: str) -> Path | None:
    """The image a COCO ``file_name`` names, searched inside ``src`` only (closed world): next to the
    file, under images/<split>/, a folder named like the file's split (``train2017/`` for
    ``instances_train2017.json``) or any top folder that stands for the split (``valid/``)."""
    token = _split_token(json_file)
    bases = [src / "images" / split, src, json_file.parent, src / "images", src / split, src / token,
             src / "images" / token]
    bases += [d for d in sorted(src.iterdir()) if d.is_dir() and split_of(d.name) == split]
    for base in dict.fromkeys(bases):
        p = within(src, file_name, base)
        if p is not None and p.is_file():
            return p
    return None


def _parent_categories(splits: dict[str, dict]) -> dict[int, str]:
    """Categories that are only the parent of the others (Roboflow's project category: id 0, no
    annotations, named as the ``supercategory`` of the real classes): id -> name."""
    used = {a.get("category_id") for d in splits.values() for a in d["annotations"]}
    cats = {int(c["id"]): c for d in splits.values() for c in d["categories"]}
    parents = {str(c.get("supercategory")) for cid, c in cats.items() if str(c.get("supercategory")) != str(c["name"])}
    return {cid: str(c["name"]) for cid, c in cats.items() if cid not in used and str(c["name"]) in parents}


def _flip_idx(names: list[str]) -> list[int] | None:
    """Each keypoint's mirror image under a horizontal flip, from left_/right_ names; None without names."""
    if not names:
        return None
    index = {n: i for i, n in enumerate(names)}
    swap = {"left": "right", "right": "left"}
    out = []
    for n in names:
        other = next((n.replace(a, b, 1) for a, b in swap.items() if a in n), n)
        out.append(index.get(other, index[n]))
    return out


def coco_to_yolo(src: Path, dest: Path, task: str = "detect", notes: list[str] | None = None) -> Path:
    """Convert COCO annotation JSON (one file per split, :func:`select_coco_files`) under ``src`` to a
    YOLO dataset in ``dest`` (images hard-linked or copied, labels normalized to 0..1).

    Tasks: detect (boxes), segment (polygons) and pose (boxes and keypoints, ``kpt_shape: [K, 3]``).
    Classes are the categories sorted by id, renumbered 0..N-1, without a parent category that owns
    no annotations (Roboflow's project category). Crowd annotations are skipped; for ``segment``,
    RLE masks (compressed or not) become their outline and multi-part objects keep their largest
    polygon. ``notes`` gets a
    sentence for each such decision. Nothing is written when any image or box is wrong; the
    DatasetError lists every problem."""
    if task not in ("detect", "segment", "pose"):
        raise DatasetError(f"COCO converts to detect, segment or pose datasets, not {task!r}")
    notes = notes if notes is not None else []
    src, dest = Path(src).resolve(), Path(dest)
    by_split = select_coco_files(src, task)
    splits = {s: _read_json(f) for s, f in by_split.items()}
    if max(len(d["categories"]) for d in splits.values()) > MAX_CLASSES:
        raise DatasetError(f"{src}: more than {MAX_CLASSES} categories; vtp trains at most {MAX_CLASSES} classes")
    if len(by_split) > 0:
        notes.append("converted COCO to YOLO: " + ", ".join(f"{s} from {f.relative_to(src).as_posix()}"
                                                             for s, f in by_split.items()))
    parents = _parent_categories(splits)
    for cid, name in parents.items():
        notes.append(f"category {cid} {name!r} is the parent (supercategory) of the other categories and has no "
                     "annotations: it is not a class")
    cats: dict[int, str] = {}
    keypoints: dict[int, list[str]] = {}
    for s, d in splits.items():
        for c in d["categories"]:
            if int(c["id"]) in parents:
                continue
            if cats.setdefault(int(c["id"]), str(c["name"])) != str(c["name"]):
                raise DatasetError(f"{by_split[s]}: category id {c['id']} is named differently across splits")
            if c.get("keypoints"):
                keypoints[int(c["id"])] = [str(k) for k in c["keypoints"]]
    if task == "pose":
        cats = {cid: name for cid, name in cats.items() if cid in keypoints}
        shapes = {len(k) for k in keypoints.values()}
        if len(shapes) != 1:
            raise DatasetError(f"{src}: pose needs one number of keypoints for every category; found {sorted(shapes)}")
    n_kpt = len(next(iter(keypoints.values()))) if task == "pose" else 0
    index = {cid: i for i, cid in enumerate(sorted(cats))}
    problems: list[str] = []
    skipped = {"rle": 0, "crowd": 0, "other": 0}
    converted_rle = 0
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
                                "(looked next to the JSON file, in images/<split>/ and in a folder named like the "
                                "split, e.g. train2017/; file_name must name a file inside the dataset folder)")
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
                    skipped["crowd"] += 1
                    continue
                where = f"{jf.name}: annotation {a.get('id')} on {im['file_name']!r}"
                if a.get("category_id") not in index:
                    if task == "pose" and a.get("category_id") in cats.keys() | set(parents):
                        skipped["other"] += 1
                        continue
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
                box = [(x0 + x1) / 2 / w, (y0 + y1) / 2 / h, (x1 - x0) / w, (y1 - y0) / h]
                if task == "detect":
                    vals = box
                elif task == "pose":
                    kp = a.get("keypoints") or [0] * (3 * n_kpt)
                    if not (isinstance(kp, list) and len(kp) == 3 * n_kpt):
                        problems.append(f"{where}: {len(kp) if isinstance(kp, list) else kp!r} keypoint values; "
                                        f"the category defines {n_kpt} keypoints (x, y, visibility each)")
                        continue
                    vals = box + [v / (w if i % 3 == 0 else h) if i % 3 != 2 else v for i, v in enumerate(kp)]
                else:
                    seg = a.get("segmentation")
                    if isinstance(seg, dict):  # an RLE mask: its largest outline
                        seg = _rle_polygon(seg, int(w), int(h))
                        if seg is None:
                            skipped["rle"] += 1
                            continue
                        converted_rle += 1
                    vals = _polygon(seg, w, h) if isinstance(seg, list) else None
                    if vals is None:
                        problems.append(f"{where}: segmentation has no polygon of 3 or more points")
                        continue
                lines.append(" ".join([str(cls), *(f"{v:.6f}" if not isinstance(v, int) else str(v) for v in vals)]))
            plan.append((img, dest / "images" / split / name, lines))
    if problems:
        shown = "\n  ".join(problems[:50]) + (f"\n  ... and {len(problems) - 50} more" if len(problems) > 50 else "")
        raise DatasetError(
            f"COCO dataset {src} has {len(problems)} problem(s); fix them and convert again:\n  {shown}", problems
        )
    if converted_rle:
        notes.append(f"converted {converted_rle} RLE mask(s) to polygons (each mask's largest outline)")
    if skipped["rle"]:
        notes.append(f"skipped {skipped['rle']} RLE mask(s) that are empty or do not match their image's size")
        log.warning("%s: skipped %d RLE masks (empty, or not the image's size)", src, skipped["rle"])
    if skipped["crowd"]:
        notes.append(f"skipped {skipped['crowd']} crowd annotation(s) (iscrowd: 1), as COCO's own evaluation does")
    if skipped["other"]:
        notes.append(f"skipped {skipped['other']} annotation(s) of categories without keypoints (pose)")
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
    data: dict[str, Any] = {"path": ".", **{s: f"images/{s}" for s in splits},
                            "names": {index[c]: cats[c] for c in sorted(cats)}}
    if task == "pose":
        names = next(iter(keypoints.values()))
        data["kpt_shape"] = [n_kpt, 3]
        flip = _flip_idx(names)
        if flip:
            data["flip_idx"] = flip
        data["kpt_names"] = {0: names}
    (dest / "data.yaml").write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return dest
