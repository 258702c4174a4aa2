"""Resumable checkpoints in storage: uploaded every K epochs while a run trains, fetched when a
crashed run is retried, removed once the run's outputs are published.

Layout: ``resume/<run_id>/`` holds the trainer's checkpoint (a file or a folder, under ``state/``)
and ``resume.json`` (epoch, epochs, framework). The manifest is written last, as for run outputs, so
a checkpoint whose upload was cut off is never taken for a complete one; a new upload removes the
old manifest first, so at every moment storage holds either one whole checkpoint or none.

Uploads run in a background thread (one in flight, the newest waiting replaces an older one), so
training does not wait for storage.
"""

from __future__ import annotations

import json
import logging
import shutil
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.contracts import Callbacks
from core.errors import StorageError
from tasks.storage import MANIFEST, Storage, download_files, upload_folder

PREFIX = "resume"
STATE = "resume.json"
log = logging.getLogger("vtp.resume")


@dataclass
class ResumePoint:
    """A complete resumable checkpoint fetched from storage."""

    path: Path  # the checkpoint file or folder, as the trainer reported it
    epoch: int  # the last epoch it holds (1-based)
    epochs: int
    uploaded_at: float


class ResumeUploader:
    """Subscribes to ``on_checkpoint`` and uploads every ``every``-th epoch's checkpoint.

    The final epoch is not uploaded: the run's outputs follow right after it, and a retry that found
    a finished checkpoint would have nothing left to train."""

    def __init__(self, storage: Storage, run_id: str, staging: Path, every: int, *, framework: str = "") -> None:
        self.storage, self.run_id, self.staging, self.every = storage, run_id, staging, every
        self.framework = framework
        self.uploaded: list[int] = []  # epochs whose checkpoint is complete in storage
        self.errors: list[str] = []
        self._pending: tuple[int, int, Path] | None = None
        self._cond = threading.Condition()
        self._closed = False
        self._busy = False
        self._thread = threading.Thread(target=self._loop, name="vtp-resume-upload", daemon=True)
        self._thread.start()

    @classmethod
    def attach(cls, callbacks: Callbacks, storage: Storage, run_id: str, staging: Path, every: int,
               *, framework: str = "") -> ResumeUploader | None:
        if every <= 0:
            return None
        uploader = cls(storage, run_id, staging, every, framework=framework)
        callbacks.add("on_checkpoint", uploader.on_checkpoint)
        return uploader

    def on_checkpoint(self, epoch: int, epochs: int, path: Path) -> None:
        if epoch % self.every or epoch >= epochs or not path.exists():
            return
        # Copy now, in the trainer's thread: the trainer overwrites its checkpoint next epoch.
        target = self.staging / f"epoch-{epoch}"
        shutil.rmtree(target, ignore_errors=True)
        (target / "state").mkdir(parents=True)
        if path.is_dir():
            shutil.copytree(path, target / "state" / path.name)
        else:
            shutil.copy2(path, target / "state" / path.name)
        (target / STATE).write_text(json.dumps({
            "run_id": self.run_id, "epoch": epoch, "epochs": epochs, "framework": self.framework,
            "checkpoint": f"state/{path.name}", "uploaded_at": time.time(),
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
                upload_folder(self.storage, folder, PREFIX, self.run_id, run_id=self.run_id, epoch=epoch)
                self.uploaded.append(epoch)
                log.info("resumable checkpoint of epoch %d uploaded to %s", epoch,
                         self.storage.uri(PREFIX, self.run_id))
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


def fetch(storage: Storage, run_id: str, dest: Path) -> ResumePoint | None:
    """Download the run's last complete resumable checkpoint into ``dest``; None if there is none."""
    manifest: dict[str, Any] | None = storage.read_json(PREFIX, run_id, MANIFEST)
    if not manifest:
        return None
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    try:
        download_files(storage, dest, PREFIX, run_id, files=manifest["files"])
    except StorageError as e:
        log.warning("resumable checkpoint of run %s not taken (%s); starting over", run_id, e)
        return None
    state = json.loads((dest / STATE).read_text())
    return ResumePoint(path=dest / state["checkpoint"], epoch=int(state["epoch"]), epochs=int(state["epochs"]),
                       uploaded_at=float(state.get("uploaded_at", 0)))


def clear(storage: Storage, run_id: str) -> None:
    """Remove the run's resumable checkpoint (its outputs are published)."""
    if storage.exists(PREFIX, run_id, MANIFEST):
        storage.remove(PREFIX, run_id, MANIFEST)  # first: a half-removed folder never looks complete
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
