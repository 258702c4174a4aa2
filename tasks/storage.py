"""Storage through fsspec: one code path for a local folder (file://) and S3/MinIO (s3://).

Layout under the storage root (``VTP_STORAGE_URL``)::

    datasets/index.json                      name -> {uri, format, task, classes, counts}
    datasets/<name>/...  + manifest.json     imported datasets, manifest written last
    runs/<run_id>/{checkpoints,artifacts}/   + manifest.json written last

A folder's contents count as complete only once its manifest exists; the manifest lists every file
with its size and sha256, so readers can verify what they fetched.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import fsspec

from core.errors import StorageError
from core.settings import Settings, get_settings

MANIFEST = "manifest.json"
SCHEMES = ("file", "s3")
_CHUNK = 1 << 20


def read_summary(settings: Settings, run_id: str) -> dict[str, Any] | None:
    """The run's ``summary.json`` once its outputs are complete (its manifest is written last), else None."""
    storage = Storage(settings=settings)
    if not storage.exists("runs", run_id, MANIFEST):
        return None
    return storage.read_json("runs", run_id, "summary.json")


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def check_uri(uri: str) -> str:
    """Refuse URIs outside the storage schemes vtp speaks (no http(s), no other protocols)."""
    scheme = urlparse(uri).scheme or "file"
    if scheme not in SCHEMES:
        raise StorageError(
            f"{uri!r} uses the scheme {scheme!r}, which vtp does not read: use file:///path or s3://bucket/prefix"
        )
    return uri


class Storage:
    """A storage root: every path given to its methods is relative to it."""

    def __init__(self, url: str | None = None, settings: Settings | None = None):
        self.settings = settings or get_settings()
        self.url = check_uri((url or self.settings.storage_url).rstrip("/"))
        self.fs, self.root = filesystem(self.url, self.settings)

    def __repr__(self) -> str:
        return f"Storage({self.url!r})"

    def path(self, *parts: str) -> str:
        return "/".join([self.root.rstrip("/"), *(p.strip("/") for p in parts if p)])

    def uri(self, *parts: str) -> str:
        return "/".join([self.url, *(p.strip("/") for p in parts if p)])

    def exists(self, *parts: str) -> bool:
        return self.fs.exists(self.path(*parts))

    def read_json(self, *parts: str) -> Any | None:
        try:
            with self.fs.open(self.path(*parts), "rb") as f:
                return json.load(f)
        except FileNotFoundError:
            return None

    def write_json(self, data: Any, *parts: str) -> None:
        self.write_bytes(json.dumps(data, indent=2, sort_keys=True).encode(), *parts)

    def write_bytes(self, data: bytes, *parts: str) -> None:
        target = self.path(*parts)
        if self.fs.protocol in ("file", ("file", "local")) or "file" in self.fs.protocol:
            tmp = f"{target}.tmp-{uuid.uuid4().hex[:8]}"
            self.fs.makedirs(os.path.dirname(target), exist_ok=True)
            with self.fs.open(tmp, "wb") as f:
                f.write(data)
            os.replace(tmp, target)  # atomic on one filesystem
        else:
            with self.fs.open(target, "wb") as f:  # an S3 PUT is atomic per object
                f.write(data)

    def put_file(self, local: Path, *parts: str) -> None:
        target = self.path(*parts)
        if "file" in self.fs.protocol:
            self.fs.makedirs(os.path.dirname(target), exist_ok=True)
            tmp = f"{target}.tmp-{uuid.uuid4().hex[:8]}"
            self.fs.put_file(str(local), tmp)
            os.replace(tmp, target)
        else:
            self.fs.put_file(str(local), target)

    def remove(self, *parts: str) -> None:
        path = self.path(*parts)
        if self.fs.exists(path):
            self.fs.rm(path, recursive=True)

    def folders(self, *parts: str) -> list[str]:
        """Names of the folders directly under ``parts`` (one listing call, not recursive); [] when none."""
        base = self.path(*parts).rstrip("/")
        try:
            found = self.fs.ls(base, detail=True)
        except FileNotFoundError:
            return []
        return sorted(info["name"].rstrip("/").rsplit("/", 1)[-1] for info in found if info.get("type") == "directory")

    def listing(self, *parts: str) -> dict[str, dict[str, Any]]:
        """Relative path -> fsspec info for every file under ``parts``."""
        base = self.path(*parts).rstrip("/")
        try:
            found = self.fs.find(base, detail=True)
        except FileNotFoundError:
            return {}
        return {name[len(base) + 1 :]: info for name, info in found.items() if info.get("type") != "directory"}


def s3_endpoint(settings: Settings) -> str | None:
    """The S3-compatible endpoint: VTP_S3_ENDPOINT_URL, else AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL; None = AWS."""
    return settings.s3_endpoint_url or os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")


def filesystem(url: str, settings: Settings | None = None) -> tuple[fsspec.AbstractFileSystem, str]:
    """The fsspec filesystem for ``url`` and the path within it. S3 endpoints come from settings."""
    settings = settings or get_settings()
    parsed = urlparse(url)
    scheme = parsed.scheme or "file"
    if scheme == "s3":
        endpoint = s3_endpoint(settings)
        client_kwargs = {"endpoint_url": endpoint} if endpoint else {}
        fs = fsspec.filesystem(
            "s3",
            client_kwargs=client_kwargs,
            skip_instance_cache=True,
            use_listings_cache=False,
            config_kwargs={"connect_timeout": 10, "read_timeout": 60,
                           "retries": {"max_attempts": 5, "mode": "standard"}},  # 503s, throttling: backoff + jitter
        )
        return fs, f"{parsed.netloc}{parsed.path}".rstrip("/")
    if scheme == "file":
        path = parsed.path if parsed.scheme else url
        return fsspec.filesystem("file"), path.rstrip("/") or "/"
    raise StorageError(f"unsupported storage scheme {scheme!r}: use file:// or s3://")


def ensure_root(settings: Settings | None = None) -> str:
    """Make the storage root usable before anything is stored: the folder (``file://``) or the
    bucket (``s3://``, created when missing, in ``AWS_DEFAULT_REGION``), then a probe object written,
    read back and removed. Returns what was done, for a person ("bucket vtp created", "ready").
    Raises StorageError saying what to set when the endpoint, the credentials or the bucket fail."""
    settings = settings or get_settings()
    url = settings.storage_url
    check_uri(url)
    fs, root = filesystem(url, settings)
    done = "ready"
    probe = f"{root}/.vtp-probe-{uuid.uuid4().hex[:8]}"
    endpoint = s3_endpoint(settings)
    if urlparse(url).scheme == "s3" and endpoint:  # said at once: the S3 client retries a refused connection for a minute
        where = urlparse(endpoint)
        try:
            socket.create_connection((where.hostname or "", where.port or (443 if where.scheme == "https" else 80)),
                                     timeout=5).close()
        except OSError as e:
            raise StorageError(f"storage {url} cannot be used: nothing answers at VTP_S3_ENDPOINT_URL={endpoint} "
                               f"({e.strerror or e}); start the S3 service or correct the address") from None
    try:
        if urlparse(url).scheme == "s3":
            bucket = root.split("/", 1)[0]
            if not fs.exists(bucket):
                fs.mkdir(bucket, create_parents=True)
                done = f"bucket {bucket} created"
        else:
            fs.makedirs(root, exist_ok=True)
        fs.pipe(probe, b"vtp")
        if fs.cat(probe) != b"vtp":
            raise OSError("the probe object read back different bytes")
        fs.rm(probe)
    except Exception as e:  # botocore's and fsspec's errors have no common base: each is said, not raised raw
        hint = ("check VTP_S3_ENDPOINT_URL" + (f" ({endpoint})" if endpoint else " (unset: AWS itself)") +
                ", AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY and AWS_DEFAULT_REGION, and that the credentials may "
                "create the bucket or write to it") if urlparse(url).scheme == "s3" else \
            "check that the folder can be created and written by this user"
        raise StorageError(f"storage {url} cannot be used: {type(e).__name__}: {e}; {hint}") from e
    return done


def build_manifest(root: Path, files: Iterable[Path] | None = None, **extra: Any) -> dict[str, Any]:
    """Manifest of ``files`` (default: every file under root) with sizes and sha256 sums."""
    paths = sorted(files) if files is not None else sorted(p for p in root.rglob("*") if p.is_file())
    entries = {
        p.relative_to(root).as_posix(): {"size": p.stat().st_size, "sha256": sha256_file(p)} for p in paths
    }
    return {"version": 1, "created": time.time(), "files": entries, **extra}


@dataclass
class UploadResult:
    uri: str
    files: int
    bytes: int


def upload_folder(storage: Storage, local_root: Path, *parts: str, files: Iterable[Path] | None = None,
                  manifest: dict[str, Any] | None = None, **manifest_extra: Any) -> UploadResult:
    """Upload files under ``local_root`` to ``parts``; the manifest goes last, so a reader never
    takes a half-uploaded folder for a complete one. An earlier manifest is removed first.
    ``manifest`` is one :func:`build_manifest` already made of these files (not hashed again)."""
    manifest = manifest or build_manifest(local_root, files, **manifest_extra)
    if storage.exists(*parts, MANIFEST):
        storage.remove(*parts, MANIFEST)
    for rel in manifest["files"]:
        storage.put_file(local_root / rel, *parts, rel)
    storage.write_json(manifest, *parts, MANIFEST)
    total = sum(f["size"] for f in manifest["files"].values())
    return UploadResult(uri=storage.uri(*parts), files=len(manifest["files"]), bytes=total)


def download_files(storage: Storage, local_root: Path, *parts: str, files: dict[str, dict[str, Any]]) -> None:
    """Download manifest entries ``files`` (relative path -> {size, sha256}) under ``parts`` into
    ``local_root``, each checked against its sha256. A path that would leave ``local_root`` or a file
    that differs from its entry raises StorageError naming it."""
    root = local_root.resolve()
    for rel, entry in files.items():
        target = local_root / rel
        if not target.resolve().is_relative_to(root):
            raise StorageError(f"{storage.uri(*parts)}: its manifest names a path outside the folder: {rel!r}")
        target.parent.mkdir(parents=True, exist_ok=True)
        storage.fs.get_file(storage.path(*parts, rel), str(target))
        if sha256_file(target) != entry["sha256"]:
            raise StorageError(f"{storage.uri(*parts, rel)} does not match its manifest (it changed in storage)")
