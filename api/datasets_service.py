"""Datasets through the API: archive uploads are ingested (safely extracted, validated, COCO
converted, stored, registered) by tasks.dataset_ingest; existing storage URIs are registered.

The storage registry (``datasets/index.json``) is what flows read, so it is written first; the
database row follows a successful ingest, and if that row cannot be written the registry entry and
the imported files are removed again, so the two never disagree about a dataset the API made.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from sqlalchemy.orm import Session

from api import crud
from api.errors import Conflict, Unprocessable
from api.models import Dataset
from core.errors import DatasetError, StorageError
from core.settings import Settings
from tasks import dataset_store
from tasks.dataset_ingest import check_data_root, ingest
from tasks.storage import SCHEMES, Storage

log = logging.getLogger("vtp.api")
TASKS = ("detect", "segment", "classify", "pose", "obb")


def upload_dir(settings: Settings) -> Path:
    """A fresh folder for one upload, on the same disk as VTP_HOME (not a RAM-backed /tmp)."""
    root = settings.home / "uploads"
    root.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix="upload-", dir=root))


def check_new_name(session: Session, *, name: str, storage: Storage, versioned: bool = False) -> None:
    """A name for a new dataset. With ``versioned`` (an upload), the name of an imported dataset is
    fine too: the upload becomes its next version. Conflict (409) otherwise."""
    if not dataset_store.NAME_RE.match(name):
        raise Unprocessable(f"name={name!r} is not allowed: use letters, digits, '.', '_' or '-' (at most 100)")
    existing = dataset_store.list_datasets(storage).get(name)
    if versioned and existing is not None and existing.versions:
        return
    if crud.get_dataset_by_name(session, name=name) is not None or existing is not None:
        more = "" if versioned else " (uploading an archive under an imported dataset's name makes a new version)"
        raise Conflict(f"a dataset named {name!r} exists already: choose another name{more}")


def check_task(task: str | None) -> str | None:
    if task in (None, ""):
        return None
    if task not in TASKS:
        raise Unprocessable(f"task={task!r} is not a task: use one of {', '.join(TASKS)} (or leave it out to guess)")
    return task


def import_archive(session: Session, *, settings: Settings, name: str, archive: Path, task: str | None = None,
                   project_id: int | None = None, filename: str | None = None,
                   val_fraction: float | None = None) -> tuple[Dataset, bool]:
    """Ingest an uploaded archive; the archive and its extraction are removed afterwards. Problems
    are reported against ``filename`` (the upload's own name) and paths inside the archive. An
    imported dataset's name takes the upload as its next version. Returns (the row, whether anything
    was stored: False when the content equals an existing version's)."""
    storage = Storage(settings=settings)
    check_new_name(session, name=name, storage=storage, versioned=True)
    crud.check_project(session, project_id=project_id)
    record = ingest(name, str(archive), task=check_task(task), storage=storage, label=filename or archive.name,
                    val_fraction=val_fraction)
    if not getattr(record, "stored", True):  # the same content as an existing version: nothing to save
        return crud.get_dataset_by_name(session, name=name) or _save(
            session, storage=storage, record=record, report=_report(record, imported=True), project_id=project_id,
            imported=False), False
    return _save(session, storage=storage, record=record, report=_report(record, imported=True),
                 project_id=project_id, imported=True), True


def register_uri(session: Session, *, settings: Settings, name: str, uri: str, task: str | None = None,
                 project_id: int | None = None) -> Dataset:
    """Register a dataset where it already is (file:// or s3://): nothing is copied."""
    storage = Storage(settings=settings)
    check_new_name(session, name=name, storage=storage)
    crud.check_project(session, project_id=project_id)
    if urlparse(uri).scheme not in SCHEMES:
        raise Unprocessable(f"uri={uri!r} is not a storage URI vtp reads: use file:///absolute/path or s3://bucket/prefix")
    check_data_root(uri, settings)  # before anything is listed: file:// only under the storage folder / VTP_DATA_ROOTS
    if not _has_files(Storage(uri, settings), uri):
        raise DatasetError(f"{uri} holds no files: check the URI and credentials (S3 endpoint: VTP_S3_ENDPOINT_URL)")
    record = dataset_store.register(storage, dataset_store.DatasetRecord(name=name, uri=uri.rstrip("/"),
                                                                         task=check_task(task)))
    return _save(session, storage=storage, record=record, report=None, project_id=project_id, imported=False)


def _has_files(source: Storage, uri: str) -> bool:
    """Whether ``uri`` lists any file. Missing or refused credentials are the request's problem
    (422: the person can fix the URI or the setup); an S3 endpoint that does not answer is a 503."""
    from botocore.exceptions import BotoCoreError, NoCredentialsError, PartialCredentialsError

    try:
        return bool(source.listing())
    except (NoCredentialsError, PartialCredentialsError):
        raise DatasetError(f"{uri} cannot be read: vtp has no S3 credentials (set AWS_ACCESS_KEY_ID and "
                           "AWS_SECRET_ACCESS_KEY for the API, and VTP_S3_ENDPOINT_URL for a non-AWS endpoint)") from None
    except PermissionError as e:
        raise DatasetError(f"{uri} cannot be read with vtp's S3 credentials (access denied: {e})") from None
    except (BotoCoreError, OSError) as e:
        raise StorageError(f"the storage behind {uri} did not answer ({type(e).__name__}: {e}); try again, "
                           "or check VTP_S3_ENDPOINT_URL") from None


def _report(record: dataset_store.DatasetRecord, *, imported: bool) -> dict[str, Any]:
    """What the import established. tasks.dataset_ingest.ingest refuses datasets with fatal
    problems but returns only the record, so its warnings reach the API once the record carries
    the validation report (``record.report``, a ValidationReport.to_dict())."""
    full = getattr(record, "report", None)
    if full:
        return dict(full)
    return {"fatal": False, "validated": imported, "format": record.format, "task": record.task,
            "classes": list(record.classes), "counts": dict(record.counts), "problems": None}


def _save(session: Session, *, storage: Storage, record: dataset_store.DatasetRecord, report: dict[str, Any] | None,
          project_id: int | None, imported: bool) -> Dataset:
    try:
        return crud.save_dataset(session, record=record, report=report, project_id=project_id)
    except Exception:
        session.rollback()
        log.error("dataset %s: database row not written; removing what this request added again", record.name)
        if imported and len(record.versions) > 1:  # a new version of an existing dataset: only it goes
            dataset_store.drop_version(storage, record)
        else:
            dataset_store.unregister(storage, record.name)
            if imported:
                storage.remove("datasets", record.name)
        raise


def registry(settings: Settings) -> dict[str, dataset_store.DatasetRecord]:
    """The storage registry: every registered name and its versions."""
    return dataset_store.list_datasets(Storage(settings=settings))


def sync_registry(session: Session, *, settings: Settings) -> None:
    """Adopt registry entries made outside the API (CLI, `vtp up` samples) as database rows."""
    storage = Storage(settings=settings)
    crud.adopt_registry(session, records=dataset_store.list_datasets(storage),
                        reports=lambda rec: dataset_store.read_report(storage, rec))


def remove_upload(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)
