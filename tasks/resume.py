"""Resumable checkpoints in storage: uploaded every K epochs while a run trains, fetched when a
crashed run is retried, removed once the run's outputs are published.

Layout: each upload is its own folder ``resume/<run_id>/e<epoch>-a<attempt>/`` holding the
trainer's checkpoint (a file or a folder, under ``state/``), ``resume.json`` (epoch, epochs,
framework, attempt) and, written last, ``manifest.json`` (every file's size and sha256). A folder
without a manifest is incomplete and never taken. Folders are never rewritten in place, so a reader
can never see one checkpoint's manifest with another's files; after a new upload only the newest
``KEEP`` complete folders stay, so a retry whose newest checkpoint will not load falls back to the
one before (:func:`fetch` with ``before``).

A checkpoint is only uploaded once it is complete: the copy is taken when the trainer reports the
write finished (``Callbacks.checkpoint``), the source must not change while it is copied, and the
copy must pass :func:`verify_checkpoint` (every zip member's CRC — PyTorch's ``.pt`` format — and
every safetensors header) before its manifest is written.

Uploads run in a background thread (one in flight, the newest waiting replaces an older one), so
training does not wait for storage.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import struct
import threading
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.contracts import Callbacks
from core.errors import StorageError
from tasks.storage import MANIFEST, Storage, download_files, upload_folder

PREFIX = "resume"
STATE = "resume.json"
KEEP = 2  # complete checkpoints kept per run: the newest and the one to fall back to
_FOLDER = re.compile(r"^e(\d{1,9})-a(\d{1,6})$")
log = logging.getLogger("vtp.resume")


@dataclass
class ResumePoint:
    """A complete resumable checkpoint fetched from storage."""

    path: Path  # the checkpoint file or folder, as the trainer reported it
    epoch: int  # the last epoch it holds (1-based)
    epochs: int
    uploaded_at: float
    folder: str = ""  # its folder under resume/<run_id>/ (e<epoch>-a<attempt>)


def verify_checkpoint(path: Path) -> str | None:
    """Check that a checkpoint file, or every file in a checkpoint folder, is whole: a zip (PyTorch's
    ``.pt``/``.pth``/``.bin`` format) must read back with every member's CRC intact; a
    ``.safetensors`` file must hold its header and exactly the bytes the header declares. Other files
    are not inspected. Returns None when whole, else what is wrong (for a log line). Reads the files
    fully; unpickles nothing."""
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for f in files:
        try:
            if f.suffix == ".safetensors":
                problem = _safetensors_problem(f)
                if problem:
                    return f"{f.name}: {problem}"
            elif f.suffix in CHECKPOINT_SUFFIXES:
                if not zipfile.is_zipfile(f):
                    return f"{f.name}: not a complete PyTorch checkpoint (no zip directory at its end: truncated?)"
                with zipfile.ZipFile(f) as z:
                    bad = z.testzip()
                if bad is not None:
                    return f"{f.name}: member {bad} fails its CRC check (the file changed while it was written)"
        except (OSError, zipfile.BadZipFile, ValueError, struct.error) as e:
            return f"{f.name}: unreadable ({e})"
    return None


def _safetensors_problem(path: Path) -> str | None:
    size = path.stat().st_size
    with open(path, "rb") as fh:
        head = fh.read(8)
        if len(head) < 8:
            return "shorter than a safetensors header"
        (n,) = struct.unpack("<Q", head)
        if n > min(size - 8, 100 * 1024 * 1024):
            return "header length beyond the end of the file (truncated?)"
        header = json.loads(fh.read(n))
    end = max((int(v["data_offsets"][1]) for k, v in header.items() if k != "__metadata__"), default=0)
    if 8 + n + end != size:
        return f"{size} bytes, but its header declares {8 + n + end} (truncated or still being written)"
    return None


CHECKPOINT_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt", ".safetensors")


def _signature(path: Path) -> list[tuple[str, int, int]]:
    """(path, size, mtime) of the checkpoint files (plots and logs may change: they are not state)."""
    files = (sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in CHECKPOINT_SUFFIXES)
             if path.is_dir() else [path])
    out = []
    for f in files:
        st = f.stat()
        out.append((f.as_posix(), st.st_size, st.st_mtime_ns))
    return out


def copy_settled(src: Path, dest: Path, *, attempts: int = 3, settle_s: float = 0.2) -> str | None:
    """Copy a checkpoint file or folder to ``dest`` and make sure it is whole: the source must not
    change during the copy (size and mtime of every file before == after) and the copy must pass
    :func:`verify_checkpoint`. Retries ``attempts`` times ``settle_s`` apart; returns None when the
    copy is good, else why not (``dest`` is then removed)."""
    problem = "not copied"
    for i in range(attempts):
        if i:
            time.sleep(settle_s * i)
        _remove(dest)
        try:
            before = _signature(src)
            if src.is_dir():
                shutil.copytree(src, dest)
            else:
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, dest)
            after = _signature(src)
        except OSError as e:  # a file vanished or was replaced mid-copy
            problem = f"could not be copied ({e})"
            continue
        if before != after:
            problem = "changed while it was being copied (still being written)"
            continue
        problem = verify_checkpoint(dest) or ""
        if not problem:
            return None
    _remove(dest)
    return problem


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


class ResumeUploader:
    """Subscribes to ``on_checkpoint`` and uploads every ``every``-th epoch's checkpoint.

    The final epoch is not uploaded: the run's outputs follow right after it, and a retry that found
    a finished checkpoint would have nothing left to train. ``fenced`` (a callable) says this attempt
    was superseded by a newer one: then nothing more is uploaded."""

    def __init__(self, storage: Storage, run_id: str, staging: Path, every: int, *, framework: str = "",
                 attempt: int = 1, fenced: Callable[[], bool] | None = None) -> None:
        self.storage, self.run_id, self.staging, self.every = storage, run_id, staging, every
        self.framework, self.attempt = framework, attempt
        self.fenced = fenced or (lambda: False)
        self.uploaded: list[int] = []  # epochs whose checkpoint is complete in storage
        self.skipped: list[str] = []  # checkpoints not uploaded because they were not whole
        self.errors: list[str] = []
        self._pending: tuple[int, int, Path] | None = None
        self._cond = threading.Condition()
        self._closed = False
        self._busy = False
        self._thread = threading.Thread(target=self._loop, name="vtp-resume-upload", daemon=True)
        self._thread.start()

    @classmethod
    def attach(cls, callbacks: Callbacks, storage: Storage, run_id: str, staging: Path, every: int,
               *, framework: str = "", attempt: int = 1,
               fenced: Callable[[], bool] | None = None) -> ResumeUploader | None:
        if every <= 0:
            return None
        uploader = cls(storage, run_id, staging, every, framework=framework, attempt=attempt, fenced=fenced)
        callbacks.add("on_checkpoint", uploader.on_checkpoint)
        return uploader

    def folder_name(self, epoch: int) -> str:
        return f"e{epoch:06d}-a{self.attempt}"

    def on_checkpoint(self, epoch: int, epochs: int, path: Path) -> None:
        if epoch % self.every or epoch >= epochs or not path.exists() or self.fenced():
            return
        # Copy now, in the trainer's thread: the trainer overwrites its checkpoint next epoch.
        target = self.staging / self.folder_name(epoch)
        shutil.rmtree(target, ignore_errors=True)
        (target / "state").mkdir(parents=True)
        problem = copy_settled(path, target / "state" / path.name)
        if problem:
            shutil.rmtree(target, ignore_errors=True)
            self.skipped.append(f"epoch {epoch}: {problem}")
            log.warning("the checkpoint of epoch %d is not uploaded for resuming: %s %s; the next one will be",
                        epoch, path.name, problem)
            return
        (target / STATE).write_text(json.dumps({
            "run_id": self.run_id, "epoch": epoch, "epochs": epochs, "framework": self.framework,
            "attempt": self.attempt, "checkpoint": f"state/{path.name}", "uploaded_at": time.time(),
        }))
        with self._cond:
            if self._pending:  # a newer checkpoint supersedes one still waiting
                shutil.rmtree(self._pending[2], ignore_errors=True)
            self._pending = (epoch, epochs, target)
            self._cond.notify()

    def _loop(self) -> None:
        while True:
            with self._cond:
                while self._pending is None and not self._closed:
                    self._cond.wait()
                if self._pending is None:
                    return
                epoch, _, folder = self._pending
                self._pending = None
                self._busy = True
            try:
                if self.fenced():
                    continue
                name = self.folder_name(epoch)
                upload_folder(self.storage, folder, PREFIX, self.run_id, name, run_id=self.run_id, epoch=epoch,
                              attempt=self.attempt)
                self.uploaded.append(epoch)
                log.info("resumable checkpoint of epoch %d uploaded to %s", epoch,
                         self.storage.uri(PREFIX, self.run_id, name))
                prune(self.storage, self.run_id, keep=KEEP)
            except Exception as e:  # noqa: BLE001 - a failed upload must not stop training; the next one retries
                self.errors.append(f"epoch {epoch}: {e}")
                log.warning("could not upload the resumable checkpoint of epoch %d: %s", epoch, e)
            finally:
                shutil.rmtree(folder, ignore_errors=True)
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()

    def flush(self, timeout: float = 300.0) -> None:
        """Wait until nothing is pending or uploading (tests and the end of a run)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while (self._pending or self._busy) and time.monotonic() < deadline:
                self._cond.wait(timeout=0.2)

    def close(self, wait: bool = False) -> None:
        if wait:
            self.flush()
        with self._cond:
            self._closed = True
            if self._pending:
                shutil.rmtree(self._pending[2], ignore_errors=True)
                self._pending = None
            self._cond.notify_all()
        self._thread.join(timeout=300 if wait else 60)  # an upload in flight still finishes first


def checkpoints(storage: Storage, run_id: str) -> list[tuple[int, int, str]]:
    """The run's checkpoint folders in storage, newest first: (epoch, attempt, folder name). Complete
    or not: :func:`fetch` checks the manifest."""
    base = storage.path(PREFIX, run_id)
    try:
        entries = storage.fs.ls(base, detail=False)
    except FileNotFoundError:
        return []
    found = []
    for entry in entries:
        name = str(entry).rstrip("/").rsplit("/", 1)[-1]
        if m := _FOLDER.match(name):
            found.append((int(m.group(1)), int(m.group(2)), name))
    return sorted(found, reverse=True)


def prune(storage: Storage, run_id: str, keep: int = KEEP) -> None:
    """Remove all but the newest ``keep`` complete checkpoints (and incomplete ones older than them)."""
    complete = 0
    for _, _, name in checkpoints(storage, run_id):
        if complete >= keep:
            remove_folder(storage, run_id, name)
        elif storage.exists(PREFIX, run_id, name, MANIFEST):
            complete += 1


def remove_folder(storage: Storage, run_id: str, name: str) -> None:
    if storage.exists(PREFIX, run_id, name, MANIFEST):
        storage.remove(PREFIX, run_id, name, MANIFEST)  # first: a half-removed folder never looks complete
    storage.remove(PREFIX, run_id, name)


def fetch(storage: Storage, run_id: str, dest: Path, *, before: int | None = None) -> ResumePoint | None:
    """Download the run's newest complete, intact resumable checkpoint into ``dest`` (only those
    older than epoch ``before`` when given); None if there is none. A checkpoint whose download does
    not match its manifest or fails :func:`verify_checkpoint` is skipped for the next older one."""
    for epoch, _, name in checkpoints(storage, run_id):
        if before is not None and epoch >= before:
            continue
        manifest: dict[str, Any] | None = storage.read_json(PREFIX, run_id, name, MANIFEST)
        if not manifest:
            continue
        shutil.rmtree(dest, ignore_errors=True)
        dest.mkdir(parents=True)
        try:
            download_files(storage, dest, PREFIX, run_id, name, files=manifest["files"])
            state = json.loads((dest / STATE).read_text())
        except (StorageError, OSError, ValueError, KeyError) as e:
            log.warning("resumable checkpoint %s of run %s not taken (%s)", name, run_id, e)
            continue
        path = dest / state["checkpoint"]
        if problem := verify_checkpoint(path):
            log.warning("resumable checkpoint %s of run %s not taken: %s", name, run_id, problem)
            continue
        return ResumePoint(path=path, epoch=int(state["epoch"]), epochs=int(state["epochs"]),
                           uploaded_at=float(state.get("uploaded_at", 0)), folder=name)
    return None


def latest_state(storage: Storage, run_id: str) -> dict[str, Any] | None:
    """``resume.json`` of the run's newest complete checkpoint (epoch, epochs, framework, attempt),
    without downloading the checkpoint; None when there is none."""
    for _, _, name in checkpoints(storage, run_id):
        if storage.exists(PREFIX, run_id, name, MANIFEST):
            return storage.read_json(PREFIX, run_id, name, STATE)
    return None


def clear(storage: Storage, run_id: str) -> None:
    """Remove the run's resumable checkpoints (its outputs are published)."""
    for _, _, name in checkpoints(storage, run_id):
        remove_folder(storage, run_id, name)
    storage.remove(PREFIX, run_id)


def fetch_finished(storage: Storage, spec: Any, dest: Path) -> Path:
    """Download the final ``last`` checkpoint of the finished run ``spec.extends`` into ``dest``;
    returns the file (ultralytics, timm) or the save_pretrained folder (huggingface)."""
    from core.errors import SpecError

    run_id = spec.extends
    manifest = storage.read_json("runs", run_id, MANIFEST)
    summary = storage.read_json("runs", run_id, "summary.json")
    if not manifest or not summary:
        raise SpecError(f"extends={run_id!r}: no finished run with that id in {storage.url} (only a completed "
                        "run can be continued; see `vtp runs`)")
    before = summary.get("spec") or {}
    if before.get("model") != spec.model or before.get("framework") != spec.framework:
        raise SpecError(f"extends={run_id!r} trained {before.get('framework')} {before.get('model')!r}; a run that "
                        f"continues it must train the same model, not {spec.model!r}")
    wanted = [rel for rel in manifest["files"] if rel.startswith("checkpoints/last")]
    if not wanted:
        raise SpecError(f"run {run_id} has no last checkpoint to continue from")
    shutil.rmtree(dest, ignore_errors=True)
    download_files(storage, dest, "runs", run_id, files={rel: manifest["files"][rel] for rel in wanted})
    folder = dest / "checkpoints" / "last"
    return folder if folder.is_dir() else dest / wanted[0]
