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
from core.errors import DatasetError

log = logging.getLogger("vtp")

IMAGE_SUFFIXES = frozenset({".bmp", ".dng", ".jpeg", ".jpg", ".mpo", ".png", ".tif", ".tiff", ".webp", ".pfm", ".heic"})
VAL_DIRS = ("val", "valid", "validation", "test")  # first found is the validation split
YAML_NAMES = ("data.yaml", "data.yml")
MAX_YAML_BYTES = 1_000_000  # a data.yaml is a few hundred bytes; 1 MB holds 10,000 long class names
MAX_CLASSES = 10_000
MAX_LISTED_OUTSIDE = 20
OUTSIDE = "leads outside the dataset folder (an absolute path, '..' or a link out); name files relative to the dataset folder"
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


def is_image(p: Path) -> bool:
    return p.suffix.lower() in IMAGE_SUFFIXES


def within(root: Path, entry: str | Path, base: Path | None = None) -> Path | None:
    """The path ``entry`` names (relative to ``base``, default ``root``) when it stays inside ``root``
    with symlinks followed, else None. Absolute entries, ``~`` and ``..`` that climb out are refused
    before the file system is asked anything, so the answer never depends on what exists outside."""
    text = str(entry).strip()
    if not text or text.startswith("~") or os.path.isabs(text) or "\0" in text:
        return None
    root = Path(root)
    lexical = Path(os.path.normpath((base or root) / text))
    if not _inside(lexical, root):
        return None
    try:
        real = Path(os.path.realpath(lexical))
        real_root = Path(os.path.realpath(root))
    except (OSError, ValueError):
        return None
    return lexical if _inside(real, real_root) else None


def read_list(entry: Path, root: Path) -> tuple[list[Path], list[tuple[int, str]]]:
    """A ``.txt`` split list of dataset ``root``: (image paths inside ``root``, [(line number, line)]
    refused as leading outside). Lines are relative to the list's folder (``./`` optional)."""
    images: list[Path] = []
    refused: list[tuple[int, str]] = []
    try:
        lines = entry.read_text(encoding="utf-8-sig", errors="replace").splitlines()
    except OSError:
        return [], []
    for n, line in enumerate(lines, start=1):
        line = line.strip()
        if not line:
            continue
        p = within(root, line.removeprefix("./"), entry.parent)
        if p is None:
            refused.append((n, line))
        else:
            images.append(p)
    return images, refused


def list_images(entry: Path, root: Path | None = None) -> list[Path]:
    """Images of one split entry: a folder (searched recursively) or a .txt list of image paths.

    With ``root`` (a dataset from a user) only files inside ``root``, symlinks followed, are
    returned; without it (a view vtp wrote, see :func:`prepare_local`) the entry is taken as is."""
    if entry.is_dir():
        found = sorted(p for p in entry.rglob("*") if is_image(p) and p.is_file())
        if root is None:
            return found
        if within(root, os.path.relpath(entry, root)) is None:
            return []
        real_root = Path(os.path.realpath(root))  # found lie inside entry, itself inside: only links can lead out
        return [p for p in found if _inside(Path(os.path.realpath(p)), real_root)]
    if entry.is_file() and entry.suffix == ".txt":
        if root is not None:
            return read_list(entry, root)[0]
        lines = [ln.strip() for ln in entry.read_text().splitlines() if ln.strip()]
        return [Path(os.path.normpath(entry.parent / ln.removeprefix("./"))) for ln in lines]
    return []


class _NoAliasLoader(yaml.SafeLoader):
    """yaml.SafeLoader that refuses anchors and aliases: no alias bomb can expand."""

    def compose_node(self, parent: Any, index: Any) -> Any:  # noqa: ANN401 - PyYAML's own signature
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
            raise yaml.YAMLError("anchors and aliases (&name, *name, <<: *name) are not accepted in dataset files")
        return super().compose_node(parent, index)


def load_yaml(path: Path) -> Any:  # noqa: ANN401 - whatever the YAML holds
    """Read a dataset's YAML file: at most MAX_YAML_BYTES, no anchors or aliases, safe tags only.
    Raises DatasetError (naming the file as given) when it is too large or not acceptable YAML."""
    path = Path(path)
    with open(path, "rb") as f:
        raw = f.read(MAX_YAML_BYTES + 1)
    if len(raw) > MAX_YAML_BYTES:
        raise DatasetError(f"{path} is larger than {MAX_YAML_BYTES} bytes; a dataset yaml holds paths and class names only")
    try:
        return yaml.load(raw.decode("utf-8-sig", errors="replace"), Loader=_NoAliasLoader)  # noqa: S506 - safe subclass
    except yaml.YAMLError as e:
        raise DatasetError(f"{path} cannot be read as YAML ({e}); fix its syntax") from None


def label_path(image: Path) -> Path:
    """Ultralytics' rule: the last ``/images/`` in the path becomes ``/labels/``, suffix ``.txt``."""
    sa, sb = f"{os.sep}images{os.sep}", f"{os.sep}labels{os.sep}"
    s = str(image)
    if sa in s:
        s = sb.join(s.rsplit(sa, 1))
    return Path(s).with_suffix(".txt")


def find_val_dir(root: Path) -> Path | None:
    return next((root / d for d in VAL_DIRS if (root / d).is_dir()), None)


def class_dirs(split_dir: Path) -> list[Path]:
    return sorted(p for p in split_dir.iterdir() if p.is_dir() and not p.name.startswith("."))


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
    if any((root / n).is_file() for n in YAML_NAMES):
        return "yolo"
    if coco_jsons(root):
        return "coco"
    if _has_class_folders(root / "train") and not (root / "train" / "labels").is_dir():
        return "imagefolder"  # a missing or empty val/ is reported by validate and prepare_local
    seen = ", ".join(sorted(p.name + ("/" if p.is_dir() else "") for p in root.iterdir())[:12]) or "nothing"
    raise DatasetError(f"{root} is not a dataset layout vtp reads (it holds: {seen}). Accepted layouts: {LAYOUTS}")


# --------------------------------------------------------------------------------------------- YOLO


@dataclass
class YoloLayout:
    """A YOLO ``data.yaml`` read safely; split entries resolved (they may not exist)."""

    yaml_file: Path
    data: dict[str, Any]
    splits: dict[str, list[Path]]
    names: list[str]
    notes: list[str] = field(default_factory=list)
    outside: list[tuple[str, str]] = field(default_factory=list)  # (split, entry) refused as outside


def _names(data: dict[str, Any], where: Path) -> list[str]:
    names = data.get("names")
    nc = data.get("nc")
    too_many = (len(names) if isinstance(names, (dict, list)) else 0) > MAX_CLASSES or (
        isinstance(nc, int) and not isinstance(names, (dict, list)) and nc > MAX_CLASSES)
    if too_many:
        raise DatasetError(f"{where}: more than {MAX_CLASSES} classes; vtp trains at most {MAX_CLASSES} classes")
    if isinstance(names, dict):
        try:
            ordered = sorted((int(k), str(v)) for k, v in names.items())
        except (TypeError, ValueError) as e:
            raise DatasetError(f"{where}: names keys must be class ids 0..N-1 ({e}); fix the names mapping") from e
        if [k for k, _ in ordered] != list(range(len(ordered))):
            raise DatasetError(f"{where}: names ids must run 0..{len(ordered) - 1} without gaps; renumber them")
        return [v for _, v in ordered]
    if isinstance(names, list):
        return [str(n) for n in names]
    if isinstance(data.get("nc"), int):
        return [f"class_{i}" for i in range(data["nc"])]
    raise DatasetError(f"{where}: no class names: add `names: {{0: cat, 1: dog}}` (or a list) to it")


def read_yolo(root: Path) -> YoloLayout:
    """Read ``root``'s data.yaml without executing or fetching anything.

    A relative ``path`` is taken relative to the yaml's folder; when the splits are not found
    there (e.g. ``path: ../datasets/x`` written for another machine) the yaml's folder is used.
    Entries starting with ``../`` that lead outside or do not exist are retried without it, as
    Ultralytics does (Roboflow exports write ``train: ../train/images``). Entries that still lead
    outside the dataset are listed in ``outside`` (and left out of ``splits``).
    """
    root = Path(root).resolve()
    yaml_file = next((root / n for n in YAML_NAMES if (root / n).is_file()), root / YAML_NAMES[0])
    try:
        data = load_yaml(yaml_file)
    except OSError as e:
        raise DatasetError(f"{yaml_file} cannot be read as YAML ({e}); fix its syntax") from e
    if not isinstance(data, dict):
        raise DatasetError(f"{yaml_file} should be a mapping with train, val and names keys")
    notes: list[str] = []
    if "download" in data:
        data.pop("download")
        notes.append(f"{yaml_file.name}: ignored its `download:` key (vtp never runs or fetches it)")
    declared = data.get("path")
    candidates = [root]
    if isinstance(declared, str) and declared.strip() and declared.strip() != ".":
        inner = within(root, declared)
        if inner is None:
            notes.append(f"{yaml_file.name}: ignored `path: {declared}`: it {OUTSIDE.split(';')[0]}; "
                         "read the splits relative to the dataset folder")
        elif inner != root:
            candidates.insert(0, inner)

    def resolve(base: Path, entry: str) -> Path | None:
        p = within(root, entry, base)
        if entry.startswith("../") and (p is None or not p.exists()):
            q = within(root, entry[3:], base)
            if q is not None:
                return q
        return p

    splits: dict[str, list[Path]] = {}
    outside: list[tuple[str, str]] = []
    for base in candidates:
        splits, outside = {}, []
        for key in ("train", "val", "test"):
            entry = data.get(key)
            entries = entry if isinstance(entry, list) else [entry] if entry else []
            if entries:
                splits[key] = []
                for e in entries:
                    p = resolve(base, str(e))
                    if p is None:
                        outside.append((key, str(e)))
                    else:
                        splits[key].append(p)
        if all(p.exists() for p in splits.get("train", [])):
            if base != candidates[0]:
                notes.append(f"{yaml_file.name}: path {declared!r} not found; read the splits relative to {root}")
            break
    return YoloLayout(yaml_file, data, splits, _names(data, yaml_file), notes, outside)


def _inside(p: Path, root: Path) -> bool:
    return p == root or root in p.parents


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
    for split, keys in (("train", ("train",)), ("val", ("val", "valid", "validation")), ("test", ("test",))):
        if any(k in stem for k in keys):
            return split
    return stem


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
    splits = {s: json.loads(by_split[s].read_text()) for s in ("train", "val", "test") if s in by_split}
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
