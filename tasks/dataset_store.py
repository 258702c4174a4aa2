"""Dataset registry and content-addressed download cache.

The registry is ``datasets/index.json`` in storage, so every worker that can reach storage sees the
same names. Downloads are cached by content: files are kept as blobs named by their sha256 under
``$VTP_HOME/cache/blobs`` and a dataset version (the hash of its manifest) is materialised once under
``$VTP_HOME/cache/datasets/<key>``; a second run on an unchanged dataset transfers no dataset bytes.
The cache is kept under ``VTP_CACHE_MAX_GB`` by :mod:`tasks.cache` (leases, least-recently-used eviction).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from core.errors import DatasetError, StorageError
from tasks import cache
from tasks.storage import MANIFEST, Storage, build_manifest, check_uri, upload_folder

INDEX = ("datasets", "index.json")
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
COMPLETE = cache.COMPLETE
log = logging.getLogger("vtp")


@dataclass
class CacheStats:
    """What one download did: ``bytes_transferred`` is 0 when everything came from the cache."""

    files_total: int = 0
    files_transferred: int = 0
    files_from_cache: int = 0
    bytes_transferred: int = 0
    bytes_from_cache: int = 0
    cache_hit: bool = False
    seconds: float = 0.0


@dataclass
class DatasetRecord:
    """A registered dataset. Imported datasets are versioned: ``versions`` lists every import of
    the name (oldest first, each ``{version, hash, uri, format, task, classes, counts, created}``);
    the top-level fields describe the version this record stands for (the latest, unless resolved
    from ``NAME@vN`` or ``NAME@<hash prefix>``). ``hash`` is the first 12 hex digits of the sha256
    of the version's manifest (every file's path and sha256), so equal content is one version."""

    name: str
    uri: str
    format: str | None = None
    task: str | None = None
    classes: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    created: float = field(default_factory=time.time)
    version: int | None = None
    hash: str | None = None
    versions: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ref(self) -> str:
        """The name that pins this exact version (``pets@v2``), or the name when it has no versions."""
        return f"{self.name}@v{self.version}" if self.version else self.name


def is_uri(ref: str) -> bool:
    return "://" in ref


VERSION_FIELDS = ("uri", "format", "task", "classes", "counts", "created", "version", "hash")
REF_RE = re.compile(r"^(?P<name>[^@]+)@(?:v(?P<version>\d{1,6})|(?P<hash>[0-9a-f]{4,64}))$")


def list_datasets(storage: Storage) -> dict[str, DatasetRecord]:
    raw = storage.read_json(*INDEX) or {}
    known = set(DatasetRecord.__dataclass_fields__)
    return {name: DatasetRecord(**{k: v for k, v in rec.items() if k in known}) for name, rec in raw.items()}


def matching_versions(name: str, versions: list[dict[str, Any]], selector: str) -> list[dict[str, Any]] | None:
    """The entries of ``versions`` that ``selector`` names (``v2``, or 4+ hex digits of a hash);
    None when ``selector`` is neither form."""
    m = REF_RE.match(f"{name}@{selector}")
    if m is None:
        return None
    if m["version"]:
        return [v for v in versions if v.get("version") == int(m["version"])]
    return [v for v in versions if str(v.get("hash") or "").startswith(m["hash"])]


def pinned(record: DatasetRecord, selector: str) -> DatasetRecord:
    """``record`` at the version ``selector`` names: ``v2`` or a prefix (4+ hex digits) of its hash.
    Raises DatasetError listing the versions when none (or more than one) matches."""
    found = matching_versions(record.name, record.versions, selector)
    if found is None:
        raise DatasetError(f"{record.name}@{selector}: a version is v<number> or the first hex digits of its hash")
    if len(found) != 1:
        listed = ", ".join(f"v{v['version']} ({v.get('hash') or 'no hash'})" for v in record.versions) or "none"
        what = "matches more than one version" if found else "is not a version of it"
        raise DatasetError(f"dataset {record.name!r}: {selector!r} {what}; its versions: {listed}")
    return DatasetRecord(**{**asdict(record), **{k: found[0][k] for k in VERSION_FIELDS if k in found[0]}})


def version_hash(manifest: dict[str, Any]) -> str:
    """A dataset version's identity: sha256 of its files' paths and sha256 sums, first 12 hex digits."""
    files = {rel: info["sha256"] for rel, info in manifest["files"].items()}
    return hashlib.sha256(json.dumps(files, sort_keys=True).encode()).hexdigest()[:12]


def register(storage: Storage, record: DatasetRecord) -> DatasetRecord:
    if not NAME_RE.match(record.name):
        raise DatasetError(
            f"dataset name {record.name!r} is not allowed: use letters, digits, '.', '_' or '-' (at most 100)"
        )
    check_uri(record.uri)
    index = storage.read_json(*INDEX) or {}
    index[record.name] = asdict(record)
    storage.write_json(index, *INDEX)
    return record


def unregister(storage: Storage, name: str) -> None:
    index = storage.read_json(*INDEX) or {}
    index.pop(name, None)
    storage.write_json(index, *INDEX)


def resolve(storage: Storage, ref: str) -> DatasetRecord:
    """A registered name or a storage URI -> its record; an unknown name says which names exist.
    A file:// URI (given or registered) must lie under the storage folder or VTP_DATA_ROOTS."""
    from tasks.dataset_ingest import check_data_root

    if is_uri(ref):
        check_uri(ref)
        check_data_root(ref, storage.settings)
        return DatasetRecord(name=ref.rstrip("/").rsplit("/", 1)[-1], uri=ref.rstrip("/"))
    datasets = list_datasets(storage)
    name, _, selector = ref.partition("@")
    if name in datasets:
        record = pinned(datasets[name], selector) if selector else datasets[name]
        check_data_root(record.uri, storage.settings)
        return record
    ref = name
    from core.spec import suggest

    known = ", ".join(sorted(datasets)) or "none yet"
    raise DatasetError(
        f"dataset {ref!r} is not registered.{suggest(ref, list(datasets))} Registered: {known}. "
        "Add one with `vtp datasets add NAME FOLDER_OR_URI` or make a sample with `vtp datasets sample shapes-detect`."
    )


def import_folder(storage: Storage, name: str, local: Path, *, report: dict[str, Any] | None = None,
                  **meta: Any) -> DatasetRecord:
    """Store a local dataset folder as a new version of ``name`` and register it.

    A version is immutable: its files go to ``datasets/<name>/<hash>/`` (manifest last) and are never
    written again. Content equal to an existing version's (same files, same bytes) is that version:
    nothing is uploaded, and the returned record says which version it is. ``report`` (the import's
    health report) is stored beside the version as ``datasets/<name>/<hash>.report.json``."""
    if not NAME_RE.match(name):
        raise DatasetError(f"dataset name {name!r} is not allowed: use letters, digits, '.', '_' or '-'")
    files = [p for p in local.rglob("*") if p.is_file() and not p.is_symlink()]
    if not files:
        raise DatasetError(f"{local} holds no files: point to a dataset folder (YOLO, ImageFolder or COCO)")
    manifest = build_manifest(local, files)
    digest = version_hash(manifest)
    existing = list_datasets(storage).get(name)
    versions = list(existing.versions) if existing else []
    if existing and not versions:  # registered before versions existed: its files are version 1
        versions = [{**{k: getattr(existing, k) for k in VERSION_FIELDS}, "version": 1}]
    same = next((v for v in versions if v.get("hash") == digest), None)
    stored = same is None
    if same is None:
        upload_folder(storage, local, "datasets", name, digest, manifest=manifest)
        if report is not None:
            storage.write_json(report, "datasets", name, f"{digest}.report.json")
        same = {"uri": storage.uri("datasets", name, digest), **meta, "created": time.time(),
                "version": max((int(v.get("version") or 0) for v in versions), default=0) + 1, "hash": digest}
        versions.append(same)
    record = register(storage, DatasetRecord(name=name, **{k: same[k] for k in VERSION_FIELDS if k in same},
                                             versions=versions))
    record.stored = stored  # type: ignore[attr-defined] - False: the content was an existing version
    return record


def drop_version(storage: Storage, record: DatasetRecord) -> None:
    """Undo the import of ``record``'s version (the newest): its files, its report and its entry;
    the name points to the version before it again."""
    versions = [v for v in record.versions if v.get("hash") != record.hash]
    if record.hash:
        storage.remove("datasets", record.name, record.hash)
        storage.remove("datasets", record.name, f"{record.hash}.report.json")
    if not versions:
        unregister(storage, record.name)
        return
    register(storage, DatasetRecord(name=record.name, **{k: versions[-1][k] for k in VERSION_FIELDS if k in versions[-1]},
                                    versions=versions))


def read_report(storage: Storage, record: DatasetRecord) -> dict[str, Any] | None:
    """The health report stored with ``record``'s version at import, or None (registered URIs,
    versions imported before reports were stored)."""
    if not record.hash:
        return None
    return storage.read_json("datasets", record.name, f"{record.hash}.report.json")


def _remote_listing(storage: Storage, uri: str) -> tuple[Storage, dict[str, dict[str, Any]], bool]:
    """(storage at uri, rel path -> {size, sha256|etag}, has_checksums)."""
    src = Storage(uri, storage.settings)
    manifest = src.read_json(MANIFEST)
    if manifest:
        return src, manifest["files"], True
    listing = src.listing()
    if not listing:
        raise DatasetError(f"dataset at {uri} is empty or missing: check the URI, or register another dataset")
    files = {
        rel: {"size": int(info.get("size") or 0),
              "etag": str(info.get("ETag") or info.get("etag") or info.get("mtime") or info.get("LastModified"))}
        for rel, info in listing.items()
    }
    return src, files, False


def download(storage: Storage, ref: str, cache_root: Path, *,
             lease: bool = True) -> tuple[Path, CacheStats, DatasetRecord]:
    """Materialise dataset ``ref`` under ``cache_root`` and return (local folder, stats, record).

    With ``lease`` (the default) the folder is leased to this process: no eviction removes it while the
    process lives (``tasks.cache.release`` ends the lease earlier). Afterwards the cache is pruned to
    ``VTP_CACHE_MAX_GB``, least recently used versions first; a failure there only logs a warning.
    """
    started = time.monotonic()
    record = resolve(storage, ref)
    src, files, checksummed = _remote_listing(storage, record.uri)
    # Ultralytics label caches are pickles: never take one from user data (it would be unpickled).
    files = {rel: info for rel, info in files.items() if not rel.endswith(".cache")}
    key = hashlib.sha256(json.dumps([record.uri if not checksummed else "", files], sort_keys=True).encode()).hexdigest()[:24]
    target = cache_root / "datasets" / key
    stats = CacheStats(files_total=len(files))
    if (target / COMPLETE).exists() and _claim(cache_root, target, lease):
        stats.cache_hit = True
        stats.files_from_cache = len(files)
        stats.bytes_from_cache = sum(f["size"] for f in files.values())
        stats.seconds = time.monotonic() - started
        _keep_under_cap(storage, cache_root, target)
        return target, stats, record

    blobs = cache_root / "blobs"
    blobs.mkdir(parents=True, exist_ok=True)
    (cache_root / "datasets").mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f"{key}.", dir=cache_root / "datasets"))
    try:
        if lease:
            cache.take_lease(staging)  # moves with the folder when it is published
        need: list[tuple[str, Path]] = []
        for rel, info in files.items():
            _check_rel(rel)
            dest = staging / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            blob = blobs / info["sha256"] if checksummed else None
            if blob is not None and _link(blob, dest):
                stats.files_from_cache += 1
                stats.bytes_from_cache += info["size"]
            else:
                need.append((rel, dest))
        if need:
            try:
                src.fs.get([src.path(rel) for rel, _ in need], [str(d) for _, d in need])
            except FileNotFoundError as e:
                raise DatasetError(f"a file of dataset {ref!r} vanished during download ({e}); retry the run") from e
            except OSError as e:
                raise StorageError(f"could not download dataset {ref!r} from {record.uri}: {e}") from e
            for rel, dest in need:
                size = dest.stat().st_size
                stats.files_transferred += 1
                stats.bytes_transferred += size
                if checksummed:
                    digest = _sha(dest)
                    if digest != files[rel]["sha256"]:
                        raise StorageError(f"{record.uri}/{rel} does not match its manifest checksum; re-import the dataset")
                    blob = blobs / digest
                    if not blob.exists():
                        tmp = blobs / f".{digest}.{uuid.uuid4().hex[:6]}"
                        os.link(dest, tmp)
                        os.replace(tmp, blob)
        (staging / COMPLETE).write_text(json.dumps({"uri": record.uri, "files": len(files)}))
        cache.touch(staging)
        if not _publish(cache_root, staging, target, lease):  # another run finished it first: use theirs
            shutil.rmtree(staging, ignore_errors=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    stats.seconds = time.monotonic() - started
    _keep_under_cap(storage, cache_root, target)
    return target, stats, record


def _link(blob: Path, dest: Path) -> bool:
    """Hard-link a cached blob to ``dest``; False when it is not cached (or was evicted just now)."""
    try:
        os.link(blob, dest)
    except FileNotFoundError:
        return False
    return True


def _claim(cache_root: Path, target: Path, lease: bool) -> bool:
    """Under the cache lock: is ``target`` complete? If so, lease it and mark it used."""
    try:
        with cache.locked(cache_root):
            if not (target / COMPLETE).exists():
                return False  # evicted just now: download it again
            if lease:
                cache.take_lease(target)
            cache.touch(target)
    except OSError as e:  # e.g. a read-only cache: use it, unprotected from eviction by others
        log.warning("dataset cache: could not lease %s (%s); another process may evict it", target, e)
        return (target / COMPLETE).exists()
    return True


def _publish(cache_root: Path, staging: Path, target: Path, lease: bool) -> bool:
    """Rename the finished ``staging`` folder to ``target``; False when another download got there first
    (``target`` is then leased and used instead)."""
    with cache.locked(cache_root):
        for _ in range(3):
            try:
                os.replace(staging, target)
                return True
            except OSError:
                if (target / COMPLETE).exists():
                    if lease:
                        cache.take_lease(target)
                    cache.touch(target)
                    return False
                # a version folder without its marker: an eviction that crashed midway; set it aside
                with contextlib.suppress(FileNotFoundError):
                    os.replace(target, target.with_name(f"{cache.TRASH_PREFIX}{target.name}-{uuid.uuid4().hex[:8]}"))
    raise StorageError(f"could not move the downloaded dataset into {target}; check the cache folder's permissions")


def _keep_under_cap(storage: Storage, cache_root: Path, target: Path) -> None:
    """Evict old versions down to VTP_CACHE_MAX_GB, keeping ``target``; never fails the caller."""
    try:
        cache.enforce_cap(cache_root, storage.settings.cache_max_gb, keep=[target])
    except Exception as e:  # noqa: BLE001 - eviction is housekeeping: a run must not fail on it
        log.warning("dataset cache: could not evict old dataset versions from %s: %s", cache_root, e)


def _sha(path: Path) -> str:
    from tasks.storage import sha256_file

    return sha256_file(path)


def _check_rel(rel: str) -> None:
    parts = Path(rel).parts
    if rel.startswith("/") or ".." in parts:
        raise DatasetError(f"dataset file name {rel!r} points outside the dataset; it is refused")
    if parts and parts[0] in cache.RESERVED:
        raise DatasetError(f"dataset file name {rel!r} is reserved for vtp's cache; rename it")


__all__ = [
    "CacheStats", "DatasetRecord", "build_manifest", "download", "import_folder", "list_datasets", "pinned",
    "read_report", "register", "resolve", "unregister", "version_hash",
]
