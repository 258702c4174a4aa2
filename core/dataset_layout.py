"""What vtp knows about a dataset folder's layout, in one place: image suffixes, split names and
their order, the folder names a validation split may have, the ``data.yaml`` of a YOLO dataset
(one parser) and where YOLO keeps a label file.

Used by dataset import and checks (:mod:`tasks.dataset_formats`, :mod:`tasks.validation`), by the
sample generator and by the trainers, so they all agree on what a split or an image is. Imports
nothing of vtp's but :mod:`core.errors`.

Datasets are closed worlds (docs/security.md, "Datasets"): every path a dataset names (a split
entry, a line of a ``.txt`` split list, ``path:``) must stay inside the dataset folder, symlinks
followed; :func:`within` is the one check. A ``data.yaml`` is read by :func:`load_yaml`: at most
``MAX_YAML_BYTES``, ``yaml.SafeLoader`` tags only, anchors and aliases refused.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from core.errors import DatasetError

# Image files, by lower-case suffix (the set Ultralytics reads; PIL opens each of them)
IMAGE_SUFFIXES = frozenset({".bmp", ".dng", ".jpeg", ".jpg", ".mpo", ".png", ".tif", ".tiff", ".webp", ".pfm", ".heic"})
# The splits vtp knows, in their order: train, then the split that measures it, then a held-out one
SPLITS = ("train", "val", "test")
# Names a split may have in a dataset (folder names, COCO file names), per split
SPLIT_ALIASES: dict[str, tuple[str, ...]] = {"train": ("train",), "val": ("val", "valid", "validation"),
                                             "test": ("test",)}
# Folders an ImageFolder dataset's validation split may be called; the first that exists is used
VAL_DIRS = (*SPLIT_ALIASES["val"], "test")
YAML_NAMES = ("data.yaml", "data.yml")
MAX_YAML_BYTES = 1_000_000  # a data.yaml is a few hundred bytes; 1 MB holds 10,000 long class names
MAX_CLASSES = 10_000
OUTSIDE = "leads outside the dataset folder (an absolute path, '..' or a link out); name files relative to the dataset folder"


def is_image(path: Path) -> bool:
    """Whether ``path`` names an image file by its suffix (case-insensitive; the file is not opened)."""
    return path.suffix.lower() in IMAGE_SUFFIXES


def split_of(name: str) -> str | None:
    """The split a name stands for (``instances_valid`` -> ``val``), by :data:`SPLIT_ALIASES` in
    :data:`SPLITS` order; None when it names none."""
    name = name.lower()
    return next((split for split in SPLITS if any(alias in name for alias in SPLIT_ALIASES[split])), None)


def inside(path: Path, root: Path) -> bool:
    """Whether ``path`` is ``root`` or lies under it (lexically: resolve both first to follow links)."""
    return path == root or root in path.parents


def within(root: Path, entry: str | Path, base: Path | None = None) -> Path | None:
    """The path ``entry`` names (relative to ``base``, default ``root``) when it stays inside ``root``
    with symlinks followed, else None. Absolute entries, ``~`` and ``..`` that climb out are refused
    before the file system is asked anything, so the answer never depends on what exists outside."""
    text = str(entry).strip()
    if not text or text.startswith("~") or os.path.isabs(text) or "\0" in text:
        return None
    root = Path(root)
    lexical = Path(os.path.normpath((base or root) / text))
    if not inside(lexical, root):
        return None
    try:
        real = Path(os.path.realpath(lexical))
        real_root = Path(os.path.realpath(root))
    except (OSError, ValueError):
        return None
    return lexical if inside(real, real_root) else None


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
    """Images of one split entry: a folder (searched recursively, sorted) or a .txt list of image paths.

    With ``root`` (a dataset from a user) only files inside ``root``, symlinks followed, are
    returned; without it (a view vtp wrote, see :func:`tasks.dataset_formats.prepare_local`) the
    entry is taken as is. Anything else (a missing entry, another file) has no images: []."""
    if entry.is_dir():
        found = sorted(p for p in entry.rglob("*") if is_image(p) and p.is_file())
        if root is None:
            return found
        if within(root, os.path.relpath(entry, root)) is None:
            return []
        real_root = Path(os.path.realpath(root))  # found lie inside entry, itself inside: only links can lead out
        return [p for p in found if inside(Path(os.path.realpath(p)), real_root)]
    if entry.is_file() and entry.suffix == ".txt":
        if root is not None:
            return read_list(entry, root)[0]
        lines = [ln.strip() for ln in entry.read_text().splitlines() if ln.strip()]
        return [Path(os.path.normpath(entry.parent / ln.removeprefix("./"))) for ln in lines]
    return []


def label_path(image: Path) -> Path:
    """Ultralytics' rule: the last ``/images/`` in the path becomes ``/labels/``, suffix ``.txt``."""
    sa, sb = f"{os.sep}images{os.sep}", f"{os.sep}labels{os.sep}"
    s = str(image)
    if sa in s:
        s = sb.join(s.rsplit(sa, 1))
    return Path(s).with_suffix(".txt")


def class_dirs(split_dir: Path) -> list[Path]:
    """The class folders of an ImageFolder split, sorted by name; hidden folders are not classes."""
    return sorted(p for p in split_dir.iterdir() if p.is_dir() and not p.name.startswith("."))


def find_val_dir(root: Path) -> Path | None:
    """An ImageFolder dataset's validation folder: the first of :data:`VAL_DIRS` under ``root``, or None."""
    return next((root / d for d in VAL_DIRS if (root / d).is_dir()), None)


# ------------------------------------------------------------------------------------- data.yaml


class _NoAliasLoader(yaml.SafeLoader):
    """yaml.SafeLoader that refuses anchors and aliases: no alias bomb can expand."""

    def compose_node(self, parent: Any, index: Any) -> Any:  # noqa: ANN401 - PyYAML's own signature
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
            raise yaml.YAMLError("anchors and aliases (&name, *name, <<: *name) are not accepted in dataset files")
        return super().compose_node(parent, index)


def decode_text(raw: bytes, where: Path | str) -> tuple[str, str | None]:
    """``raw`` as text and the encoding it was read in when that was not UTF-8 (else None).

    UTF-8 (with or without a byte-order mark) is tried first, then CP949 (what Korean Windows
    Notepad writes as "ANSI"; strict, so most other encodings fail it), then charset-normalizer's
    guess. Raises DatasetError naming
    ``where`` when no encoding fits: never guessed silently into replacement characters."""
    try:
        return raw.decode("utf-8-sig"), None
    except UnicodeDecodeError:
        pass
    try:  # Korean Windows' "ANSI" first: short files give a statistical detector too little to go on
        return raw.decode("cp949"), "cp949"
    except UnicodeDecodeError:
        pass
    from charset_normalizer import from_bytes

    # without NUL bytes the text is not UTF-16/32, whatever a guess on a few bytes says
    wide = ("utf_16", "utf_16_be", "utf_16_le", "utf_32", "utf_32_be", "utf_32_le")
    best = from_bytes(raw, cp_exclusion=None if b"\x00" in raw else list(wide)).best()
    if best is None or best.encoding is None:
        raise DatasetError(f"{where} is not UTF-8 text and its encoding could not be recognised; re-save it as UTF-8")
    return str(best), best.encoding


def load_yaml(path: Path, notes: list[str] | None = None) -> Any:  # noqa: ANN401 - whatever the YAML holds
    """Read a dataset's YAML file: at most MAX_YAML_BYTES, no anchors or aliases, safe tags only.
    Text that is not UTF-8 is decoded by :func:`decode_text`, and ``notes`` (when given) gets a
    sentence saying so. Raises DatasetError (naming the file as given) when it is too large, in no
    recognisable encoding or not acceptable YAML, OSError when it cannot be read."""
    path = Path(path)
    with open(path, "rb") as f:
        raw = f.read(MAX_YAML_BYTES + 1)
    if len(raw) > MAX_YAML_BYTES:
        raise DatasetError(f"{path} is larger than {MAX_YAML_BYTES} bytes; a dataset yaml holds paths and class names only")
    text, encoding = decode_text(raw, path)
    if encoding and notes is not None:
        notes.append(f"{path.name}: not UTF-8; read as {encoding} (as Windows Notepad saves 'ANSI' text): check "
                     "the class names below, or re-save the file as UTF-8")
    try:
        return yaml.load(text, Loader=_NoAliasLoader)  # noqa: S506 - safe subclass
    except yaml.YAMLError as e:
        raise DatasetError(f"{path} cannot be read as YAML ({e}); fix its syntax") from None


def find_data_yaml(root: Path) -> Path | None:
    """``root/data.yaml`` (or ``data.yml``) when it is a file, else None."""
    return next((Path(root) / n for n in YAML_NAMES if (Path(root) / n).is_file()), None)


def class_names(data: dict[str, Any], where: Path) -> list[str]:
    """The class names of a data.yaml mapping, in class-id order: ``names`` as a list or an id ->
    name mapping (ids 0..N-1 without gaps), else ``class_<i>`` for ``nc`` classes. DatasetError
    (naming ``where``) when there are none, the ids are not 0..N-1, or over MAX_CLASSES."""
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
    if isinstance(nc, int):
        return [f"class_{i}" for i in range(nc)]
    raise DatasetError(f"{where}: no class names: add `names: {{0: cat, 1: dog}}` (or a list) to it")


@dataclass
class DataYaml:
    """A YOLO ``data.yaml`` read safely (:func:`read_data_yaml`); split entries resolved inside the
    dataset folder (they may not exist)."""

    yaml_file: Path
    data: dict[str, Any]
    splits: dict[str, list[Path]]  # split -> its entries (folders or .txt lists), in SPLITS order
    names: list[str]
    notes: list[str] = field(default_factory=list)
    outside: list[tuple[str, str]] = field(default_factory=list)  # (split, entry) refused as outside


def read_data_yaml(root: Path, yaml_file: Path | None = None) -> DataYaml:
    """Read the data.yaml of the dataset at ``root`` without executing or fetching anything.

    ``yaml_file`` defaults to ``root/data.yaml`` (or ``data.yml``); vtp's own prepared view passes
    the one it wrote beside the view. A ``download:`` key is dropped (with a note). A relative
    ``path`` is taken relative to ``root``; an absolute one is ignored (with a note) unless it names
    ``root`` itself. When the splits are not found under ``path`` (e.g. ``path: ../datasets/x``
    written for another machine) ``root`` is used. Entries starting with ``../`` that lead outside
    or do not exist are retried without it, as Ultralytics does (Roboflow exports write
    ``train: ../train/images``). Entries that still lead outside are listed in ``outside`` (and left
    out of ``splits``). Raises DatasetError when the file is not acceptable YAML, not a mapping, or
    has no usable class names.
    """
    root = Path(root).resolve()
    if yaml_file is None:
        yaml_file = find_data_yaml(root) or root / YAML_NAMES[0]
    yaml_file = Path(yaml_file)
    notes: list[str] = []
    try:
        data = load_yaml(yaml_file, notes)
    except OSError as e:
        raise DatasetError(f"{yaml_file} cannot be read as YAML ({e}); fix its syntax") from e
    if not isinstance(data, dict):
        raise DatasetError(f"{yaml_file} should be a mapping with train, val and names keys")
    if "download" in data:
        data.pop("download")
        notes.append(f"{yaml_file.name}: ignored its `download:` key (vtp never runs or fetches it)")
    declared = data.get("path")
    candidates = [root]
    if isinstance(declared, str) and declared.strip() and declared.strip() != ".":
        # compared as text: nothing outside the dataset is looked up
        names_root = os.path.isabs(declared.strip()) and os.path.normpath(declared.strip()) == str(root)
        inner = root if names_root else within(root, declared)
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
        for key in SPLITS:
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
    return DataYaml(yaml_file, data, splits, class_names(data, yaml_file), notes, outside)
