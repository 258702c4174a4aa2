"""Bringing datasets in: generated samples, local folders, archives (safely extracted), COCO
(converted to YOLO on ingest) and existing storage URIs. Every import is validated first: a dataset
with fatal problems is never registered."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import yaml

from core.errors import DatasetError
from tasks import dataset_store
from tasks.archives import extract, is_archive
from tasks.storage import Storage


def guess_task(root: Path, fmt: str) -> str:
    """imagefolder -> classify; YOLO -> pose (kpt_shape), obb (9 values), segment (polygons) or detect."""
    if fmt == "imagefolder":
        return "classify"
    data_yaml = next((p for p in (root / "data.yaml", root / "data.yml") if p.exists()), None)
    try:
        data = yaml.safe_load(data_yaml.read_text()) if data_yaml else None
    except (OSError, yaml.YAMLError):
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


def ingest_folder(name: str, root: Path, *, task: str | None = None, storage: Storage | None = None) -> dataset_store.DatasetRecord:
    from tasks.dataset_formats import coco_to_yolo, detect_format
    from tasks.validation import validate

    storage = storage or Storage()
    fmt = detect_format(root)
    with tempfile.TemporaryDirectory(prefix="vtp-ingest-") as tmp:
        original = root
        try:
            if fmt == "coco":
                root = coco_to_yolo(root, Path(tmp) / "yolo", task=task or "detect")
                fmt = "yolo"
            task = task or guess_task(root, fmt)
            report = validate(root, task)
            report.raise_if_fatal()
        except DatasetError as e:  # the converted copy is named as the folder it came from
            raise renamed(e, {root: original}) if root != original else e from None
        return dataset_store.import_folder(storage, name, root, format=fmt, task=task,
                                           classes=list(report.classes), counts=dict(report.counts))


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
    problems = [Problem(p.severity, rename(p.file), rename(p.message)) if isinstance(p, Problem) else rename(str(p))
                for p in error.problems]
    return DatasetError(message, problems)


def ingest(name: str, source: str, *, task: str | None = None, storage: Storage | None = None,
           label: str | None = None) -> dataset_store.DatasetRecord:
    """SOURCE: a local folder or archive (imported into storage) or a storage URI (registered).

    Problems found in an archive are reported as ``<label>: <path inside the archive> ...``;
    ``label`` is the archive's own name (an upload's file name), by default its file name."""
    storage = storage or Storage()
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
            root = extract(path, dest, label=label)
            try:
                return ingest_folder(name, root, task=task, storage=storage)
            except DatasetError as e:
                error = renamed(e, {dest: ""})
                inner = root.relative_to(dest).as_posix() if root != dest else ""
                # 'pets.zip: notes is not a dataset layout', 'pets.zip, folder d/: the dataset has 2 errors'
                names_it = str(error).startswith((f"{inner}/", f"{inner} ", f"{inner}:"))
                where = f"{label}, folder {inner}/" if inner and not names_it else label
                raise renamed(error, {}, prefix=where) from None
    if not path.is_dir():
        raise DatasetError(f"{path} is neither a folder nor a .zip/.tar/.tar.gz/.tgz archive")
    return ingest_folder(name, path, task=task, storage=storage)


def ingest_sample(sample: str, name: str | None = None, *, n_train: int = 24, n_val: int = 8,
                  image_size: int = 128, storage: Storage | None = None) -> dataset_store.DatasetRecord:
    from tasks.samples import SAMPLES, make_sample

    with tempfile.TemporaryDirectory(prefix="vtp-sample-") as tmp:
        root = make_sample(sample, Path(tmp) / sample, n_train=n_train, n_val=n_val, image_size=image_size)
        return ingest_folder(name or sample, root, task=SAMPLES[sample], storage=storage)
