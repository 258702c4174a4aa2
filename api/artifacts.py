"""A run's outputs, as listed in its manifest (``runs/<id>/manifest.json``, written last).

Only names present in the manifest are ever opened, and each is checked again as a plain relative
path, so no request (``../``, absolute paths, percent-encoded or backslash variants) can read
anything outside the run's folder, even if a manifest were tampered with.
"""

from __future__ import annotations

import mimetypes
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import quote

from api.errors import ApiError, Conflict, NotFound
from api.models import Run
from core.settings import Settings
from tasks.storage import MANIFEST, Storage

CHUNK = 1 << 20


class BadArtifactPath(ApiError):
    status_code = 400


@dataclass
class Artifact:
    path: str
    size: int
    sha256: str


def is_plain_relative(path: str) -> bool:
    """'checkpoints/best.pt' yes; '', '/x', '../x', 'a/../b', 'a\\b', 'c:x', 'a//b', NUL no."""
    if not path or "\\" in path or "\x00" in path or path.startswith("/"):
        return False
    parts = path.split("/")
    if any(p in ("", ".", "..") for p in parts) or ":" in parts[0]:
        return False
    return PurePosixPath(path).as_posix() == path


def manifest_files(run: Run, *, settings: Settings) -> tuple[Storage, dict[str, Artifact]]:
    """The run's files from its manifest; 409 while the outputs are not complete."""
    storage = Storage(settings=settings)
    manifest = storage.read_json("runs", run.id, MANIFEST)
    if manifest is None:
        raise Conflict(f"run {run.id} has no complete outputs yet (state {run.state}): its files are listed "
                       "once the run has completed and written its manifest")
    files: dict[str, Artifact] = {}
    for rel, info in (manifest.get("files") or {}).items():
        if is_plain_relative(rel):
            files[rel] = Artifact(path=rel, size=int(info.get("size", 0)), sha256=str(info.get("sha256", "")))
    return storage, files


def find(run: Run, path: str, *, settings: Settings) -> tuple[Storage, Artifact]:
    if not is_plain_relative(path):
        raise BadArtifactPath(f"{path!r} is not a file name of this run: use a path from GET /api/runs/{run.id}/artifacts")
    storage, files = manifest_files(run, settings=settings)
    artifact = files.get(path)
    if artifact is None:
        raise NotFound(f"run {run.id} has no file {path!r}: see GET /api/runs/{run.id}/artifacts")
    return storage, artifact


def stream(storage: Storage, run: Run, artifact: Artifact) -> Iterator[bytes]:
    with storage.fs.open(storage.path("runs", run.id, artifact.path), "rb") as f:
        while chunk := f.read(CHUNK):
            yield chunk


def headers(artifact: Artifact) -> dict[str, Any]:
    name = PurePosixPath(artifact.path).name
    ascii_name = name.encode("ascii", "replace").decode().replace('"', "_").replace("?", "_")
    disposition = f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(name)}"
    return {"Content-Length": str(artifact.size), "ETag": f'"{artifact.sha256}"',
            "Content-Disposition": disposition, "X-Content-SHA256": artifact.sha256}


def media_type(artifact: Artifact) -> str:
    return mimetypes.guess_type(artifact.path)[0] or "application/octet-stream"
