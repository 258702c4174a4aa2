"""Safe extraction of dataset archives (.zip, .tar, .tar.gz, .tgz).

Refused: absolute paths, '..' components, links and device files, more than MAX_ENTRIES entries,
more than MAX_BYTES unpacked, and zip bombs: a zip entry over RATIO_FLOOR bytes that unpacks to more
than MAX_RATIO times its compressed size, or a whole archive that does. Nothing is written outside
``dest``; on refusal ``dest`` is removed.

Only dataset files are kept (:func:`keep_reason`): images, label and annotation text (.txt, .yaml,
.yml, .json, .xml, .csv, darknet's .names and obj.data). Everything else is dropped, never written, and listed in ``dropped`` so
the import report can say so; pickle-bearing files (Ultralytics ``*.cache`` label caches, .pkl,
.npy, .pt, ...) among them, since loading one runs code.
"""

from __future__ import annotations

import shutil
import tarfile
import zipfile
from pathlib import Path, PurePosixPath

from core.dataset_layout import IMAGE_SUFFIXES
from core.errors import DatasetError

MAX_ENTRIES = 50_000
MAX_BYTES = 20 * 1024**3
MAX_RATIO = 200  # deflate reaches ~1000x only on degenerate data; photos and labels stay far below
RATIO_FLOOR = 1024**2  # entries under 1 MiB are never bombs, whatever their ratio
ARCHIVE_SUFFIXES = (".zip", ".tar", ".tar.gz", ".tgz")
TEXT_SUFFIXES = frozenset({".txt", ".yaml", ".yml", ".json", ".xml", ".csv", ".names"})
TEXT_NAMES = frozenset({"obj.data"})  # darknet / CVAT "YOLO 1.1": where the lists and names are
PICKLE_SUFFIXES = frozenset({".cache", ".pkl", ".pickle", ".npy", ".npz", ".pt", ".pth", ".ckpt", ".bin",
                             ".joblib", ".safetensors", ".h5", ".onnx"})
PICKLE_REASON = "may hold a pickle or model (loading it could run code); vtp never loads one from a dataset"
OTHER_REASON = "not a dataset file (images, .txt/.yaml/.json/.xml/.csv/.names annotations)"
MACOS_REASON = "macOS metadata"


def is_archive(path: Path) -> bool:
    return path.is_file() and path.name.lower().endswith(ARCHIVE_SUFFIXES)


def keep_reason(rel: str) -> str | None:
    """None when the file at ``rel`` (a path inside a dataset) is a dataset file, else why it is dropped."""
    p = PurePosixPath(rel)
    if "__MACOSX" in p.parts or p.name.startswith("._") or p.name == ".DS_Store":
        return MACOS_REASON
    suffix = p.suffix.lower()
    if suffix in IMAGE_SUFFIXES or suffix in TEXT_SUFFIXES or p.name.lower() in TEXT_NAMES:
        return None
    return PICKLE_REASON if suffix in PICKLE_SUFFIXES else OTHER_REASON


def _safe_name(name: str, label: str) -> PurePosixPath:
    p = PurePosixPath(name.replace("\\", "/"))
    if p.is_absolute() or ".." in p.parts or (p.parts and ":" in p.parts[0]):
        raise DatasetError(f"{label}: entry {name!r} points outside the archive folder; the archive is refused")
    return p


def _check_totals(label: str, count: int, total: int, packed: int) -> None:
    if count > MAX_ENTRIES:
        raise DatasetError(f"{label} has more than {MAX_ENTRIES} entries; split the dataset")
    if total > MAX_BYTES:
        raise DatasetError(f"{label} unpacks to {total} bytes (limit {MAX_BYTES}); it is refused")
    if total > RATIO_FLOOR and total > MAX_RATIO * max(packed, 1):
        raise DatasetError(f"{label} unpacks to {total} bytes from {packed}, more than {MAX_RATIO} times its size: "
                           "a compression bomb is refused")


def extract(archive: Path, dest: Path, *, label: str | None = None, dropped: list[tuple[str, str]] | None = None) -> Path:
    """Extract ``archive`` into ``dest``; returns the dataset root (a lone top folder is entered).

    Messages name the archive by ``label`` (the name the person gave it, e.g. an upload's file
    name), else by its file name; never by where it was saved or extracted. Files that are not
    dataset files are not extracted; each is appended to ``dropped`` as (path in the archive, why)."""
    label = label or archive.name
    dropped = dropped if dropped is not None else []
    dest.mkdir(parents=True, exist_ok=True)
    try:
        if archive.name.lower().endswith(".zip"):
            _extract_zip(archive, dest, label, dropped)
        else:
            _extract_tar(archive, dest, label, dropped)
    except (zipfile.BadZipFile, tarfile.TarError, EOFError) as e:
        shutil.rmtree(dest, ignore_errors=True)
        raise DatasetError(f"{label} is not a readable archive ({e}); upload a .zip or .tar.gz") from None
    except BaseException:
        shutil.rmtree(dest, ignore_errors=True)
        raise
    entries = [p for p in dest.iterdir() if not p.name.startswith((".", "__MACOSX"))]
    return entries[0] if len(entries) == 1 and entries[0].is_dir() else dest


def name_encoding(archive: Path) -> str | None:
    """The encoding of a zip's file names when they are not UTF-8, else None.

    Zip tools on Windows write names in the system's code page (CP949 on Korean Windows) without the
    UTF-8 flag; Python reads such names as CP437, which turns 고양이 into mojibake. The raw bytes are
    decoded as UTF-8 when they are (macOS and Linux tools often omit the flag too), else their encoding
    is recognised by charset-normalizer (:func:`core.dataset_layout.decode_text`)."""
    from core.dataset_layout import decode_text

    with zipfile.ZipFile(archive) as zf:
        raw = [i.filename.encode("cp437") for i in zf.infolist() if not i.flag_bits & 0x800 and not i.filename.isascii()]
    if not raw:
        return None
    joined = b"\n".join(raw)
    try:
        joined.decode("utf-8")
        return "utf-8"
    except UnicodeDecodeError:
        return decode_text(joined, archive.name)[1]


def _extract_zip(archive: Path, dest: Path, label: str, dropped: list[tuple[str, str]]) -> None:
    encoding = name_encoding(archive)
    with zipfile.ZipFile(archive, metadata_encoding=encoding) as zf:
        infos = zf.infolist()
        _check_totals(label, len(infos), sum(i.file_size for i in infos), archive.stat().st_size)
        for info in infos:
            rel = _safe_name(info.filename, label)
            if (info.external_attr >> 16) & 0o170000 == 0o120000:
                raise DatasetError(f"{label}: entry {info.filename!r} is a symbolic link; the archive is refused")
            if info.file_size > RATIO_FLOOR and info.file_size > MAX_RATIO * max(info.compress_size, 1):
                raise DatasetError(f"{label}: entry {info.filename!r} unpacks to more than {MAX_RATIO} times its "
                                   "compressed size: a compression bomb is refused")
        for info in infos:
            rel = _safe_name(info.filename, label)
            target = dest.joinpath(*rel.parts)
            if info.is_dir():
                continue  # folders are made for the files kept in them
            reason = keep_reason(rel.as_posix())
            if reason:
                dropped.append((rel.as_posix(), reason))
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            written = 0
            with zf.open(info) as src, open(target, "wb") as out:
                while chunk := src.read(1 << 20):
                    written += len(chunk)
                    if written > info.file_size:  # a lying header: treat as a bomb
                        raise DatasetError(f"{label}: entry {info.filename!r} is larger than it claims")
                    out.write(chunk)


def _extract_tar(archive: Path, dest: Path, label: str, dropped: list[tuple[str, str]]) -> None:
    with tarfile.open(archive) as tf:
        members: list[tarfile.TarInfo] = []
        total = 0
        for m in tf:  # headers one by one: an archive of a million entries stops at the limit
            members.append(m)
            total += m.size
            _check_totals(label, len(members), total, archive.stat().st_size)
        keep = []
        for m in members:
            rel = _safe_name(m.name, label)
            if not (m.isfile() or m.isdir()):
                raise DatasetError(f"{label}: entry {m.name!r} is a link or device; the archive is refused")
            if m.isfile():
                reason = keep_reason(rel.as_posix())
                if reason:
                    dropped.append((rel.as_posix(), reason))
                    continue
                keep.append(m)
        tf.extractall(dest, members=keep, filter="data")
