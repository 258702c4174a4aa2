"""Bringing datasets in: generated samples, local folders, archives (safely extracted), COCO
(converted to YOLO on ingest) and existing storage URIs. Every import is validated first: a dataset
with fatal problems is never registered.

Only dataset files are imported (:func:`tasks.archives.keep_reason`): pickle-bearing files such as
Ultralytics' ``*.cache`` label caches and anything else that is not an image or annotation text are
dropped, and the import report (``record.report["dropped"]``) lists each with the reason.
``file://`` dataset URIs are read only under the storage folder and the folders in VTP_DATA_ROOTS
(:func:`check_data_root`)."""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from core.errors import DatasetError
from core.settings import Settings, get_settings
from tasks import dataset_store
from tasks.archives import extract, is_archive, keep_reason
from tasks.storage import Storage

log = logging.getLogger("vtp")
MAX_DROPPED_LISTED = 200
MAX_PROBLEMS_STORED = 500  # findings kept in a stored report (the counts say how many there were)


def data_roots(settings: Settings) -> list[Path]:
    """Folders whose datasets may be registered as file:// URIs: the storage folder (when storage is
    local) and VTP_DATA_ROOTS."""
    roots = [Path(p.strip()).expanduser() for p in settings.data_roots.split(",") if p.strip()]
    if urlparse(settings.storage_url).scheme in ("", "file"):
        roots.insert(0, Path(unquote(urlparse(settings.storage_url).path) or "/"))
    return [Path(os.path.realpath(r)) for r in roots]


def check_data_root(uri: str, settings: Settings | None = None) -> str:
    """Refuse a file:// (or bare path) dataset URI outside the allowed folders. The message is the same
    whether the path exists or not, and the path is never listed or read before this check."""
    parsed = urlparse(uri)
    if parsed.scheme not in ("", "file"):
        return uri
    settings = settings or get_settings()
    raw = unquote(parsed.path if parsed.scheme else uri)
    real = Path(os.path.realpath(os.path.expanduser(raw or "/")))
    for root in data_roots(settings):
        if real == root or root in real.parents:
            return uri
    raise DatasetError(f"{uri!r} is not under a folder vtp may read datasets from: file:// datasets must lie under "
                       "the storage folder or a folder listed in VTP_DATA_ROOTS (set by the operator)")


def dataset_files(root: Path) -> tuple[list[Path], list[tuple[str, str]]]:
    """(files under ``root`` that are dataset files, [(path, why)] of the files that are not)."""
    kept: list[Path] = []
    dropped: list[tuple[str, str]] = []
    for p in sorted(root.rglob("*")):
        if not p.is_file() or p.is_symlink():
            continue
        rel = p.relative_to(root).as_posix()
        reason = keep_reason(rel)
        if reason:
            dropped.append((rel, reason))
        else:
            kept.append(p)
    return kept, dropped


def _only_dataset_files(root: Path, tmp: Path, *, owned: bool) -> tuple[Path, list[tuple[str, str]]]:
    """``root`` with only its dataset files: files dropped in place when ``owned`` (an extraction vtp
    made), else a linked (or copied) copy in ``tmp``, so a person's own folder is never changed."""
    kept, dropped = dataset_files(root)
    if not dropped:
        return root, dropped
    if owned:
        for rel, _ in dropped:
            (root / rel).unlink(missing_ok=True)
        return root, dropped
    copy = tmp / "kept"
    for p in kept:
        dest = copy / p.relative_to(root)
        dest.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(p, dest)
        except OSError:
            shutil.copy2(p, dest)
    copy.mkdir(exist_ok=True)
    return copy, dropped


def dropped_report(dropped: list[tuple[str, str]]) -> dict[str, Any]:
    return {"dropped": [{"file": f, "reason": r} for f, r in dropped[:MAX_DROPPED_LISTED]],
            "dropped_count": len(dropped)}


def guess_task(root: Path, fmt: str) -> str:
    """imagefolder -> classify; YOLO -> pose (kpt_shape), obb (9 values), segment (polygons) or detect."""
    if fmt == "imagefolder":
        return "classify"
    from core.dataset_layout import find_data_yaml, load_yaml

    data_yaml = find_data_yaml(root)
    try:
        data = load_yaml(data_yaml) if data_yaml else None
    except (OSError, DatasetError):
        data = None  # validation says what is wrong with the file, naming it
    if isinstance(data, dict) and "kpt_shape" in data:
        return "pose"
    for label in list((root / "labels").rglob("*.txt"))[:50]:
        for line in label.read_text().splitlines():
            n = len(line.split())
            if n == 9:
                return "obb"
            if n > 5:
                return "segment"
            if n == 5:
                return "detect"
    return "detect"


def ingest_folder(name: str, root: Path, *, task: str | None = None, storage: Storage | None = None,
                  dropped: list[tuple[str, str]] | None = None, owned: bool = False,
                  val_fraction: float | None = None) -> dataset_store.DatasetRecord:
    """Validate and import the dataset folder ``root``. Files that are not dataset files are left out
    (removed when ``owned``: an extraction vtp made) and listed, with ``dropped`` (what extraction
    left out already), in the record's ``report``."""
    from tasks.dataset_formats import normalize
    from tasks.validation import validate

    storage = storage or Storage()
    dropped = list(dropped or [])
    notes: list[str] = []
    with tempfile.TemporaryDirectory(prefix="vtp-ingest-") as tmp:
        original = root
        root, more = _only_dataset_files(root, Path(tmp), owned=owned)
        dropped += more
        for rel, reason in dropped[:MAX_DROPPED_LISTED]:
            log.warning("dataset %s: left out %s: %s", name, rel, reason)
        names: dict[Path, str | Path] = {root: original} if root != original else {}
        try:
            before = root
            root, fmt, task, split = normalize(root, task, Path(tmp), notes, val_fraction=val_fraction)
            if root != before:
                names.setdefault(root, original)
            task = task or guess_task(root, fmt)
            report = validate(root, task)
            report.raise_if_fatal()
        except DatasetError as e:  # the converted copy is named as the folder it came from
            if root != original:
                names[root] = original
            raise renamed(e, names) if names else e from None
        full = {**report.to_dict(), "validated": True, "notes": notes, "auto_split": split, **dropped_report(dropped)}
        full["problems"] = full["problems"][:MAX_PROBLEMS_STORED]
        record = dataset_store.import_folder(storage, name, root, format=fmt, task=task, report=full,
                                             classes=list(report.classes), counts=dict(report.counts))
        # not a DatasetRecord field (the registry stays small): stored beside the version, and by the API
        record.report = {**full, "version": record.version, "hash": record.hash}  # type: ignore[attr-defined]
        return record


def renamed(error: DatasetError, names: dict[Path, str | Path], prefix: str = "") -> DatasetError:
    """``error`` with each folder in ``names`` (and every path under it) written as its name there,
    and ``prefix`` in front, so no temporary folder of an import shows in what a person reads."""
    from tasks.validation import Problem

    def rename(text: str) -> str:
        for folder, name in names.items():
            name = str(name)
            text = text.replace(f"{folder}{os.sep}", f"{name}/" if name else "")
            text = text.replace(str(folder), name or "the top folder")
        return text

    message = rename(str(error))
    if prefix and not message.startswith(prefix):
        message = f"{prefix}: {message}"
    problems = [Problem(p.severity, rename(p.file), rename(p.message), rename(p.message_ko) if p.message_ko else None)
                if isinstance(p, Problem) else rename(str(p))
                for p in error.problems]
    return DatasetError(message, problems)


def ingest(name: str, source: str, *, task: str | None = None, storage: Storage | None = None,
           label: str | None = None, val_fraction: float | None = None) -> dataset_store.DatasetRecord:
    """SOURCE: a local folder or archive (imported into storage) or a storage URI (registered).

    Problems found in an archive are reported as ``<label>: <path inside the archive> ...``;
    ``label`` is the archive's own name (an upload's file name), by default its file name."""
    storage = storage or Storage()
    if source.startswith("file://"):
        check_data_root(source, storage.settings)
    if "://" in source and not source.startswith("file://"):
        src = Storage(source, storage.settings)
        if not src.listing():
            raise DatasetError(f"{source} holds no files: check the URI and credentials (S3 endpoint: VTP_S3_ENDPOINT_URL)")
        return dataset_store.register(storage, dataset_store.DatasetRecord(name=name, uri=source.rstrip("/"), task=task))
    path = Path(source.removeprefix("file://")).expanduser()
    if not path.exists():
        raise DatasetError(f"{path} does not exist: give a dataset folder, a .zip/.tar.gz archive, or a storage URI")
    if is_archive(path):
        label = label or path.name
        with tempfile.TemporaryDirectory(prefix="vtp-archive-") as tmp:
            dest = Path(tmp) / "x"
            dropped: list[tuple[str, str]] = []
            root = extract(path, dest, label=label, dropped=dropped)
            try:
                return ingest_folder(name, root, task=task, storage=storage, dropped=dropped, owned=True,
                                     val_fraction=val_fraction)
            except DatasetError as e:
                error = renamed(e, {dest: ""})
                inner = root.relative_to(dest).as_posix() if root != dest else ""
                # 'pets.zip: notes is not a dataset layout', 'pets.zip, folder d/: the dataset has 2 errors'
                names_it = str(error).startswith((f"{inner}/", f"{inner} ", f"{inner}:"))
                where = f"{label}, folder {inner}/" if inner and not names_it else label
                raise renamed(error, {}, prefix=where) from None
    if not path.is_dir():
        raise DatasetError(f"{path} is neither a folder nor a .zip/.tar/.tar.gz/.tgz archive")
    return ingest_folder(name, path, task=task, storage=storage, val_fraction=val_fraction)


def ingest_sample(sample: str, name: str | None = None, *, n_train: int = 24, n_val: int = 8,
                  image_size: int = 128, storage: Storage | None = None) -> dataset_store.DatasetRecord:
    from tasks.samples import SAMPLES, make_sample

    with tempfile.TemporaryDirectory(prefix="vtp-sample-") as tmp:
        root = make_sample(sample, Path(tmp) / sample, n_train=n_train, n_val=n_val, image_size=image_size)
        return ingest_folder(name or sample, root, task=SAMPLES[sample], storage=storage)
