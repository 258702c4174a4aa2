"""Safe extraction of dataset archives (.zip, .tar, .tar.gz, .tgz).

Refused: absolute paths, '..' components, links and device files, more than MAX_ENTRIES entries and
more than MAX_BYTES unpacked (zip bombs). Nothing is written outside ``dest``; on refusal ``dest``
is removed.
"""

from __future__ import annotations

import shutil
import tarfile
import zipfile
from pathlib import Path, PurePosixPath

from core.errors import DatasetError

MAX_ENTRIES = 200_000
MAX_BYTES = 50 * 1024**3
ARCHIVE_SUFFIXES = (".zip", ".tar", ".tar.gz", ".tgz")


def is_archive(path: Path) -> bool:
    return path.is_file() and path.name.lower().endswith(ARCHIVE_SUFFIXES)


def _safe_name(name: str, label: str) -> PurePosixPath:
    p = PurePosixPath(name.replace("\\", "/"))
    if p.is_absolute() or ".." in p.parts or (p.parts and ":" in p.parts[0]):
        raise DatasetError(f"{label}: entry {name!r} points outside the archive folder; the archive is refused")
    return p


def _check_totals(label: str, count: int, total: int) -> None:
    if count > MAX_ENTRIES:
        raise DatasetError(f"{label} has {count} entries (limit {MAX_ENTRIES}); split the dataset")
    if total > MAX_BYTES:
        raise DatasetError(f"{label} unpacks to {total} bytes (limit {MAX_BYTES}); it is refused")


def extract(archive: Path, dest: Path, *, label: str | None = None) -> Path:
    """Extract ``archive`` into ``dest``; returns the dataset root (a lone top folder is entered).

    Messages name the archive by ``label`` (the name the person gave it, e.g. an upload's file
    name), else by its file name; never by where it was saved or extracted."""
    label = label or archive.name
    dest.mkdir(parents=True, exist_ok=True)
    try:
        if archive.name.lower().endswith(".zip"):
            _extract_zip(archive, dest, label)
        else:
            _extract_tar(archive, dest, label)
    except (zipfile.BadZipFile, tarfile.TarError, EOFError) as e:
        shutil.rmtree(dest, ignore_errors=True)
        raise DatasetError(f"{label} is not a readable archive ({e}); upload a .zip or .tar.gz") from None
    except BaseException:
        shutil.rmtree(dest, ignore_errors=True)
        raise
    entries = [p for p in dest.iterdir() if not p.name.startswith((".", "__MACOSX"))]
    return entries[0] if len(entries) == 1 and entries[0].is_dir() else dest


def _extract_zip(archive: Path, dest: Path, label: str) -> None:
    with zipfile.ZipFile(archive) as zf:
        infos = zf.infolist()
        _check_totals(label, len(infos), sum(i.file_size for i in infos))
        for info in infos:
            rel = _safe_name(info.filename, label)
            if (info.external_attr >> 16) & 0o170000 == 0o120000:
                raise DatasetError(f"{label}: entry {info.filename!r} is a symbolic link; the archive is refused")
            target = dest.joinpath(*rel.parts)
            if info.is_dir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            written = 0
            with zf.open(info) as src, open(target, "wb") as out:
                while chunk := src.read(1 << 20):
                    written += len(chunk)
                    if written > info.file_size:  # a lying header: treat as a bomb
                        raise DatasetError(f"{label}: entry {info.filename!r} is larger than it claims")
                    out.write(chunk)


def _extract_tar(archive: Path, dest: Path, label: str) -> None:
    with tarfile.open(archive) as tf:
        members = tf.getmembers()
        _check_totals(label, len(members), sum(m.size for m in members))
        for m in members:
            _safe_name(m.name, label)
            if not (m.isfile() or m.isdir()):
                raise DatasetError(f"{label}: entry {m.name!r} is a link or device; the archive is refused")
        tf.extractall(dest, members=members, filter="data")
