"""Size cap, leases and least-recently-used eviction for the local dataset cache.

Layout (see :mod:`tasks.dataset_store`)::

    $VTP_HOME/cache/blobs/<sha256>                     one file per content, shared by hard links
    $VTP_HOME/cache/datasets/<key>/                    a materialised dataset version (hard links to blobs)
    $VTP_HOME/cache/datasets/<key>/.vtp-complete       written last: the version is complete
    $VTP_HOME/cache/datasets/<key>/.vtp-last-used      mtime = last time a download returned it
    $VTP_HOME/cache/datasets/<key>/.vtp-leases/<pid>-<host id>   a process using the version
    $VTP_HOME/cache/datasets/<key>.<random>/           a download in progress (staging)
    $VTP_HOME/cache/datasets/.trash-<key>-<random>/    a version being deleted

Only ``blobs/`` and ``datasets/`` count towards the cap (``VTP_CACHE_MAX_GB``); every inode is counted
once, so a blob and the version folders that link it cost its size once. Sizes are bytes on disk
(allocated blocks), and the cap's GB are 10**9 bytes.

A lease is live while its process runs on this host (same host name and boot), so a run needs no
explicit release; :func:`release` exists for long-lived processes. Leases of dead processes are removed
when the cache is scanned. A lease written on another host cannot be checked from here: it counts as
live until it is :data:`FOREIGN_LEASE_MAX_AGE_S` old.

Concurrency: a download takes a shared lock (``flock`` on ``cache/.vtp-cache.lock``) for the short
steps "check complete + take lease" and "publish staging folder"; eviction takes the exclusive lock
for "check leases + remove the complete marker + rename to trash", then deletes the trash without the
lock. A reader therefore never gets a version that is being deleted, and never sees a half-deleted
folder marked complete.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import shutil
import socket
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger("vtp.cache")

COMPLETE = ".vtp-complete"
LAST_USED = ".vtp-last-used"
LEASES = ".vtp-leases"
LOCK = ".vtp-cache.lock"
TRASH_PREFIX = ".trash-"
RESERVED = (COMPLETE, LAST_USED, LEASES)
GB = 10**9
STAGING_SAFETY_S = 24 * 3600.0
"""A staging folder without a live lease is kept this long (seconds) after its last change."""
FOREIGN_LEASE_MAX_AGE_S = 7 * 24 * 3600.0
"""A lease taken on another host (not checkable here) counts as live for this long (seconds)."""

KEY_RE = re.compile(r"^[0-9a-f]{24}$")
STAGING_RE = re.compile(r"^[0-9a-f]{24}\..+$")


# ------------------------------------------------------------------------------------------ locking


@contextlib.contextmanager
def locked(cache_root: Path, *, exclusive: bool = False) -> Iterator[None]:
    """Hold the cache lock (``flock`` on ``cache_root/.vtp-cache.lock``) for the block.

    Shared for downloads, exclusive for eviction. Creates ``cache_root`` when missing. Where ``fcntl``
    does not exist the block runs unlocked. Raises ``OSError`` when the lock file cannot be opened.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not Linux/macOS
        yield
        return
    cache_root.mkdir(parents=True, exist_ok=True)
    fd = os.open(cache_root / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        yield
    finally:
        os.close(fd)  # closing releases the lock


# ------------------------------------------------------------------------------------------- leases


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        pass
    try:
        import psutil

        return str(int(psutil.boot_time()))
    except Exception:  # noqa: BLE001 - no way to tell boots apart: the host name alone identifies
        return ""


def host_id() -> str:
    """This host and boot as 12 hex characters (host name + boot id): the second part of lease names."""
    return hashlib.sha256(f"{socket.gethostname()}\0{_boot_id()}".encode()).hexdigest()[:12]


def _process_start(pid: int) -> float | None:
    try:
        import psutil

        return psutil.Process(pid).create_time()
    except Exception:  # noqa: BLE001 - no psutil, or the process is gone: liveness falls back to the pid
        return None


def pid_alive(pid: int, started: float | None = None) -> bool:
    """Whether process ``pid`` runs on this host (a zombie does not count). With ``started`` (its
    start time, epoch seconds), a different process that reuses the pid does not count either."""
    if pid <= 0:
        return False
    try:
        import psutil
    except ImportError:  # pragma: no cover - psutil is installed with vtp's dependencies
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        return started is None or abs(proc.create_time() - started) < 2.0
    except psutil.NoSuchProcess:
        return False
    except psutil.AccessDenied:
        return True


def take_lease(version: Path, pid: int | None = None) -> Path:
    """Mark ``version`` (a version or staging folder) as used by process ``pid`` (default: this one).

    Returns the lease file ``version/.vtp-leases/<pid>-<host id>``; taking it twice is harmless. The
    lease holds while that process lives; see :func:`release`. Raises ``OSError`` when the folder is
    not writable or gone.
    """
    pid = os.getpid() if pid is None else pid
    folder = version / LEASES
    folder.mkdir(exist_ok=True)
    path = folder / f"{pid}-{host_id()}"
    tmp = folder / f".tmp-{uuid.uuid4().hex[:8]}"
    tmp.write_text(json.dumps({"pid": pid, "host": socket.gethostname(), "host_id": host_id(),
                               "pid_started": _process_start(pid), "taken": time.time()}))
    os.replace(tmp, path)
    return path


def release(version: Path, pid: int | None = None) -> bool:
    """Drop the lease of process ``pid`` (default: this one) on ``version``; True if there was one.

    Runs need not call it (a lease ends with its process); long-lived processes and tests do.
    """
    pid = os.getpid() if pid is None else pid
    try:
        (Path(version) / LEASES / f"{pid}-{host_id()}").unlink()
        return True
    except FileNotFoundError:
        return False


@dataclass
class Lease:
    """One lease file: ``live`` is False for a dead process; ``foreign`` when taken on another host."""

    path: Path
    pid: int
    host: str
    live: bool
    foreign: bool = False


def read_lease(path: Path, *, now: float | None = None) -> Lease:
    """Read lease file ``path`` and decide whether it is live (see the module docstring)."""
    now = time.time() if now is None else now
    name_pid, _, name_host = path.name.partition("-")
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        data = {}
    try:
        pid = int(data.get("pid", name_pid))
    except (TypeError, ValueError):
        pid = -1
    lease_host_id = str(data.get("host_id", name_host))
    host = str(data.get("host", "?"))
    if lease_host_id == host_id():
        return Lease(path, pid, host, pid_alive(pid, data.get("pid_started")))
    if host == socket.gethostname() or not data:
        return Lease(path, pid, host, False)  # this host before a reboot (or unreadable): stale
    try:
        age = now - path.stat().st_mtime
    except OSError:
        age = 0.0
    return Lease(path, pid, host, age < FOREIGN_LEASE_MAX_AGE_S, foreign=True)


def leases(version: Path, *, clean: bool = False) -> list[Lease]:
    """The leases on ``version``; with ``clean``, files of stale leases are deleted (and not returned)."""
    folder = version / LEASES
    try:
        entries = list(folder.iterdir())
    except OSError:
        return []
    found = []
    for p in entries:
        if p.name.startswith(".tmp-"):
            continue
        lease = read_lease(p)
        if lease.live or not clean:
            found.append(lease)
        else:
            p.unlink(missing_ok=True)
    return found


def touch(version: Path) -> None:
    """Record that ``version`` was used now (the mtime of ``.vtp-last-used``)."""
    (version / LAST_USED).touch()
    os.utime(version / LAST_USED)


def last_used(version: Path) -> float:
    """When ``version`` was last returned by a download (epoch seconds); 0 when unknown."""
    for name in (LAST_USED, COMPLETE):
        try:
            return (version / name).stat().st_mtime
        except OSError:
            continue
    return 0.0


# --------------------------------------------------------------------------------------------- scan


@dataclass
class VersionInfo:
    """One materialised dataset version. Sizes are bytes on disk."""

    key: str
    path: Path
    uri: str | None
    files: int
    bytes: int
    exclusive_bytes: int
    last_used: float
    leased_by: list[int] = field(default_factory=list)
    complete: bool = True

    @property
    def dataset(self) -> str:
        """The dataset's name: the last segment of its URI, or the one before a version's hash
        (``.../datasets/pets/3fa9c1d2e4b5`` -> ``pets``)."""
        parts = (self.uri or "?").rstrip("/").rsplit("/", 3)
        if len(parts) == 4 and parts[1] == "datasets" and re.fullmatch(r"[0-9a-f]{12}", parts[3]):
            return parts[2]
        return parts[-1]

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["path"] = str(self.path)
        d["dataset"] = self.dataset
        return d


@dataclass
class CacheUsage:
    """The dataset cache at one moment: ``bytes`` counts every inode of blobs/ and datasets/ once."""

    root: Path
    bytes: int
    max_bytes: int
    blobs: int
    blob_bytes: int
    versions: list[VersionInfo]
    staging: list[Path]

    @property
    def over_cap(self) -> bool:
        return bool(self.max_bytes) and self.bytes > self.max_bytes

    def to_dict(self) -> dict[str, Any]:
        return {"root": str(self.root), "bytes": self.bytes, "max_bytes": self.max_bytes,
                "blobs": self.blobs, "blob_bytes": self.blob_bytes,
                "versions": [v.to_dict() for v in self.versions], "staging": [str(p) for p in self.staging]}


@dataclass
class _Inode:
    size: int
    nlink: int
    links: int = 0  # links seen in the cache
    owners: set[str] = field(default_factory=set)


@dataclass
class _Scan:
    inodes: dict[tuple[int, int], _Inode]
    by_owner: dict[str, list[tuple[int, int]]]
    blob_paths: dict[tuple[int, int], list[Path]]
    versions: dict[str, VersionInfo]
    staging: dict[str, Path]
    garbage: list[Path]
    staging_leased: set[str] = field(default_factory=set)  # staging folders that have (had) a lease

    @property
    def bytes(self) -> int:
        return sum(n.size for n in self.inodes.values())

    def _frees(self, node: _Inode, owners: set[str]) -> bool:
        if owners - {"blob"}:
            return False
        # a blob also linked outside the cache keeps more than one link, so it stays
        return "blob" not in owners or node.nlink <= node.links

    def exclusive(self, owner: str) -> int:
        """Bytes the cache would lose if only ``owner`` went."""
        return sum(self.inodes[k].size for k in self.by_owner.get(owner, ())
                   if self._frees(self.inodes[k], self.inodes[k].owners - {owner}))

    def drop(self, owner: str) -> int:
        """Forget ``owner`` (it was deleted); returns the bytes the cache lost with it."""
        freed = 0
        for k in self.by_owner.pop(owner, ()):
            node = self.inodes[k]
            if owner in node.owners:
                node.owners.discard(owner)
                if self._frees(node, node.owners):
                    freed += node.size
                    node.owners.clear()
        return freed


def _disk_size(st: os.stat_result) -> int:
    blocks = getattr(st, "st_blocks", None)
    return blocks * 512 if blocks is not None else st.st_size


def _walk(folder: Path) -> Iterator[tuple[Path, os.stat_result]]:
    """Every file (not folder, not symlink target) under ``folder``; vanishing entries are skipped."""
    stack = [folder]
    while stack:
        d = stack.pop()
        try:
            it = os.scandir(d)
        except OSError:
            continue
        with it:
            for e in it:
                try:
                    if e.is_dir(follow_symlinks=False):
                        stack.append(Path(e.path))
                    else:
                        yield Path(e.path), e.stat(follow_symlinks=False)
                except OSError:
                    continue


def _scan(cache_root: Path, *, clean: bool) -> _Scan:
    """One walk over blobs/ and datasets/: every inode once, with the folders that link it."""
    s = _Scan({}, {}, {}, {}, {}, [])

    def add(owner: str, st: os.stat_result) -> None:
        k = (st.st_dev, st.st_ino)
        node = s.inodes.get(k)
        if node is None:
            node = s.inodes[k] = _Inode(_disk_size(st), st.st_nlink)
        node.links += 1
        if owner not in node.owners:
            node.owners.add(owner)
            s.by_owner.setdefault(owner, []).append(k)

    for path, st in _walk(cache_root / "blobs"):
        add("blob", st)
        s.blob_paths.setdefault((st.st_dev, st.st_ino), []).append(path)
    try:
        entries = sorted((cache_root / "datasets").iterdir())
    except OSError:
        entries = []
    for entry in entries:
        name = entry.name
        is_dir = entry.is_dir() and not entry.is_symlink()
        if name.startswith(TRASH_PREFIX):
            owner = "trash:" + name
            s.garbage.append(entry)
        elif KEY_RE.match(name) and is_dir:
            owner = "v:" + name
        elif STAGING_RE.match(name) and is_dir:
            owner = "s:" + name
            s.staging[name] = entry
        else:
            owner = "other:" + name
        if not is_dir:
            with contextlib.suppress(OSError):
                add(owner, entry.lstat())
            continue
        found = leases(entry) if owner[0] in "vs" else []
        live = [lease for lease in found if lease.live]
        if clean and owner.startswith("v:"):  # a staging folder's dead lease tells prune it is abandoned
            for lease in found:
                if not lease.live:
                    lease.path.unlink(missing_ok=True)
        if found and owner.startswith("s:"):
            s.staging_leased.add(name)
        files = 0
        for path, st in _walk(entry):
            add(owner, st)
            files += path.relative_to(entry).parts[0] not in RESERVED
        if owner.startswith("v:"):
            uri = None
            with contextlib.suppress(OSError, ValueError, AttributeError):
                uri = json.loads((entry / COMPLETE).read_text()).get("uri")
            s.versions[name] = VersionInfo(
                key=name, path=entry, uri=uri, files=files,
                bytes=sum(s.inodes[k].size for k in s.by_owner.get(owner, ())), exclusive_bytes=0,
                last_used=last_used(entry), leased_by=[lease.pid for lease in live if lease.live],
                complete=(entry / COMPLETE).exists())
    for v in s.versions.values():
        v.exclusive_bytes = s.exclusive("v:" + v.key)
    return s


def usage(cache_root: Path, max_gb: float = 0.0) -> CacheUsage:
    """Scan the dataset cache under ``cache_root`` (it only deletes lease files of dead processes).

    ``max_gb`` is only reported (0 = no cap). Versions come least recently used first.
    """
    s = _scan(cache_root, clean=True)
    return CacheUsage(
        root=cache_root, bytes=s.bytes, max_bytes=gb_to_bytes(max_gb),
        blobs=sum(len(p) for p in s.blob_paths.values()), blob_bytes=sum(s.inodes[k].size for k in s.blob_paths),
        versions=sorted(s.versions.values(), key=lambda v: v.last_used), staging=sorted(s.staging.values()))


def gb_to_bytes(max_gb: float) -> int:
    """``VTP_CACHE_MAX_GB`` in bytes (GB = 10**9 bytes); 0 or less means no cap and gives 0."""
    return int(max_gb * GB) if max_gb and max_gb > 0 else 0


# -------------------------------------------------------------------------------------------- prune


@dataclass
class PruneReport:
    """What :func:`prune` did. Sizes are bytes on disk; ``max_bytes`` 0 means no cap."""

    bytes_before: int
    bytes_after: int
    max_bytes: int
    evicted: list[VersionInfo] = field(default_factory=list)
    kept_leased: list[VersionInfo] = field(default_factory=list)
    removed_blobs: int = 0
    removed_leftovers: int = 0

    @property
    def over_cap(self) -> bool:
        """Still above the cap: everything left is leased (in use) or too new to remove."""
        return bool(self.max_bytes) and self.bytes_after > self.max_bytes

    def to_dict(self) -> dict[str, Any]:
        return {"bytes_before": self.bytes_before, "bytes_after": self.bytes_after, "max_bytes": self.max_bytes,
                "evicted": [v.to_dict() for v in self.evicted], "kept_leased": [v.to_dict() for v in self.kept_leased],
                "removed_blobs": self.removed_blobs, "removed_leftovers": self.removed_leftovers,
                "over_cap": self.over_cap}


def _to_trash(folder: Path) -> Path | None:
    """Rename ``folder`` to a trash name next to it (the caller holds the exclusive lock)."""
    trash = folder.with_name(f"{TRASH_PREFIX}{folder.name}-{uuid.uuid4().hex[:8]}")
    try:
        os.replace(folder, trash)
    except FileNotFoundError:
        return None
    return trash


def _evict(cache_root: Path, version: Path) -> bool:
    """Move one unleased version out of the way and delete it; False if it got a lease or vanished."""
    with locked(cache_root, exclusive=True):
        if not version.is_dir() or leases(version, clean=True):
            return False
        (version / COMPLETE).unlink(missing_ok=True)  # first: nobody takes a half-deleted folder as complete
        trash = _to_trash(version)
    if trash is None:
        return False
    shutil.rmtree(trash, ignore_errors=True)
    return True


def _remove_lonely_blobs(paths: Iterable[Path]) -> int:
    """Delete blobs no version links any more (link count 1); returns how many went."""
    n = 0
    for p in paths:
        try:
            if p.lstat().st_nlink == 1:
                p.unlink()
                n += 1
        except OSError:
            continue
    return n


def _remove_leftovers(cache_root: Path, s: _Scan, now: float) -> tuple[int, int]:
    """Delete trash folders, versions without their complete marker (an eviction that crashed midway)
    and staging folders no live process writes to. Returns (how many folders, bytes the cache lost)."""
    removed = freed = 0
    for trash in s.garbage:
        shutil.rmtree(trash, ignore_errors=True)
        removed, freed = removed + 1, freed + s.drop("trash:" + trash.name)
    for v in list(s.versions.values()):
        if v.complete or v.leased_by:
            continue
        with locked(cache_root, exclusive=True):
            if (v.path / COMPLETE).exists() or leases(v.path, clean=True):
                continue
            trash = _to_trash(v.path)
        if trash is not None:
            shutil.rmtree(trash, ignore_errors=True)
            removed, freed = removed + 1, freed + s.drop("v:" + v.key)
            del s.versions[v.key]
    for name, staging in s.staging.items():
        had_lease = name in s.staging_leased
        if leases(staging, clean=True):
            continue  # a download in progress
        try:
            age = now - staging.stat().st_mtime
        except OSError:
            continue  # published or removed meanwhile
        if not had_lease and age < STAGING_SAFETY_S:
            continue  # no lease yet: maybe a download that has just started
        with locked(cache_root, exclusive=True):
            if leases(staging, clean=False):
                continue
            trash = _to_trash(staging)
        if trash is not None:
            shutil.rmtree(trash, ignore_errors=True)
            removed, freed = removed + 1, freed + s.drop("s:" + name)
    return removed, freed


def prune(cache_root: Path, max_bytes: int = 0, *, evict_all: bool = False, keep: Iterable[Path] = ()) -> PruneReport:
    """Evict least-recently-used dataset versions until the cache uses at most ``max_bytes`` bytes on disk.

    ``max_bytes`` 0 evicts no version (no cap); ``evict_all`` evicts every version not leased. Versions
    with a live lease, and the folders in ``keep``, are never evicted, so the cache may stay above the
    cap (see ``PruneReport.over_cap``). Always removed: stale leases, trash and abandoned staging
    folders, and blobs no version links any more (link count 1). Raises ``OSError`` only when the
    cache lock cannot be taken; files that vanish meanwhile (another process pruning) are skipped.
    """
    now = time.time()
    s = _scan(cache_root, clean=True)
    report = PruneReport(bytes_before=s.bytes, bytes_after=s.bytes, max_bytes=max(0, int(max_bytes)))
    report.removed_leftovers, freed = _remove_leftovers(cache_root, s, now)
    current = s.bytes - freed
    keep_names = {Path(p).name for p in keep}
    for v in sorted(s.versions.values(), key=lambda v: v.last_used):
        if not evict_all and (not report.max_bytes or current <= report.max_bytes):
            break
        if v.leased_by or v.key in keep_names or not _evict(cache_root, v.path):
            report.kept_leased.append(v)
            continue
        report.evicted.append(v)
        current -= s.drop("v:" + v.key)
    # blobs of evicted versions that lost their last other link, and orphans from before (link count 1);
    # a blob being written (".<sha>.<random>") is left alone unless it is old
    report.removed_blobs = _remove_lonely_blobs(
        p for paths in s.blob_paths.values() for p in paths
        if not p.name.startswith(".") or now - _mtime(p) > STAGING_SAFETY_S)
    if report.evicted or report.removed_blobs or report.removed_leftovers:
        report.bytes_after = _scan(cache_root, clean=False).bytes
    for v in report.evicted:
        log.info("dataset cache: evicted %s (%s, %s freed, last used %s)", v.key, v.dataset,
                 human_bytes(v.exclusive_bytes), time.strftime("%Y-%m-%d %H:%M", time.localtime(v.last_used)))
    if report.over_cap:
        log.warning("dataset cache: %s on disk is above the cap of %s; what is left is in use by running processes",
                    human_bytes(report.bytes_after), human_bytes(report.max_bytes))
    return report


def _mtime(p: Path) -> float:
    try:
        return p.lstat().st_mtime
    except OSError:
        return time.time()


def enforce_cap(cache_root: Path, max_gb: float, *, keep: Iterable[Path] = ()) -> PruneReport | None:
    """:func:`prune` to ``max_gb`` GB (10**9 bytes); ``None`` when ``max_gb`` is 0 (no cap)."""
    cap = gb_to_bytes(max_gb)
    if not cap:
        return None
    return prune(cache_root, cap, keep=keep)


def human_bytes(n: float) -> str:
    """1234567 -> '1.2 MB' (powers of 1000, like the cap)."""
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"  # pragma: no cover


__all__ = [
    "COMPLETE", "LAST_USED", "LEASES", "CacheUsage", "Lease", "PruneReport", "VersionInfo", "enforce_cap",
    "gb_to_bytes", "human_bytes", "last_used", "leases", "locked", "pid_alive", "prune", "read_lease", "release",
    "take_lease", "touch", "usage",
]
