"""Bringing datasets in: generated samples, local folders, archives (safely extracted), COCO
(converted to YOLO on ingest) and existing storage URIs. Every import is validated first: a dataset
with fatal problems is never registered."""

from __future__ import annotations

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
    if data_yaml and "kpt_shape" in (yaml.safe_load(data_yaml.read_text()) or {}):
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
        if fmt == "coco":
            root = coco_to_yolo(root, Path(tmp) / "yolo", task=task or "detect")
            fmt = "yolo"
        task = task or guess_task(root, fmt)
        report = validate(root, task)
        report.raise_if_fatal()
        return dataset_store.import_folder(storage, name, root, format=fmt, task=task,
                                           classes=list(report.classes), counts=dict(report.counts))


def ingest(name: str, source: str, *, task: str | None = None, storage: Storage | None = None) -> dataset_store.DatasetRecord:
    """SOURCE: a local folder or archive (imported into storage) or a storage URI (registered)."""
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
        with tempfile.TemporaryDirectory(prefix="vtp-archive-") as tmp:
            return ingest_folder(name, extract(path, Path(tmp) / "x"), task=task, storage=storage)
    if not path.is_dir():
        raise DatasetError(f"{path} is neither a folder nor a .zip/.tar/.tar.gz/.tgz archive")
    return ingest_folder(name, path, task=task, storage=storage)


def ingest_sample(sample: str, name: str | None = None, *, n_train: int = 24, n_val: int = 8,
                  image_size: int = 128, storage: Storage | None = None) -> dataset_store.DatasetRecord:
    from tasks.samples import SAMPLES, make_sample

    with tempfile.TemporaryDirectory(prefix="vtp-sample-") as tmp:
        root = make_sample(sample, Path(tmp) / sample, n_train=n_train, n_val=n_val, image_size=image_size)
        return ingest_folder(name or sample, root, task=SAMPLES[sample], storage=storage)
