"""A resumable checkpoint reaches storage only whole: never while the framework is still writing it,
never truncated, never with a manifest that vouches for a broken file (issue 12)."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest
import torch

from core.contracts import Callbacks
from tasks import resume
from tasks.storage import MANIFEST, Storage


def torch_bytes(value: float) -> bytes:
    import io

    buffer = io.BytesIO()
    torch.save({"epoch": value, "w": torch.full((128, 128), value)}, buffer)
    return buffer.getvalue()


def complete(storage: Storage, run: str) -> list[str]:
    return [name for _, _, name in resume.checkpoints(storage, run) if storage.exists(resume.PREFIX, run, name, MANIFEST)]


@pytest.fixture
def storage(tmp_path) -> Storage:
    return Storage(f"file://{tmp_path / 'storage'}")


def test_truncated_checkpoint_is_not_published_until_complete(storage, tmp_path):
    """The CI failure's kind: a last.pt cut short (still being written, or written by a dying process)
    is reported as a checkpoint. Nothing is published for it; the next whole one is, and it loads."""
    weights = tmp_path / "train" / "weights"
    weights.mkdir(parents=True)
    whole = torch_bytes(1.0)
    (weights / "last.pt").write_bytes(whole[: len(whole) // 2])
    (weights / "results.csv").write_text("epoch,loss\n1,0.5\n")
    callbacks = Callbacks()
    uploader = resume.ResumeUploader.attach(callbacks, storage, "run", tmp_path / "staging", every=1)
    callbacks.checkpoint(1, 5, weights.parent)
    uploader.flush()
    assert uploader.uploaded == [] and complete(storage, "run") == []
    assert uploader.skipped and "last.pt" in uploader.skipped[0] and "truncated" in uploader.skipped[0]
    assert resume.fetch(storage, "run", tmp_path / "got") is None

    (weights / "last.pt").write_bytes(torch_bytes(2.0))  # the framework finished writing
    callbacks.checkpoint(2, 5, weights.parent)
    uploader.close(wait=True)
    assert uploader.uploaded == [2] and complete(storage, "run") == ["e000002-a1"]
    point = resume.fetch(storage, "run", tmp_path / "got2")
    assert point is not None and point.epoch == 2
    loaded = torch.load(point.path / "weights" / "last.pt", weights_only=True)
    assert loaded["epoch"] == 2.0 and loaded["w"].shape == (128, 128)


def test_checkpoint_still_being_written_during_the_copy_is_not_published(storage, tmp_path, monkeypatch):
    """A writer still at work while the uploader copies (deterministically: every copy sees the file
    grow): the copy is retried, then skipped; the manifest never vouches for it."""
    ckpt = tmp_path / "last.pt"
    ckpt.write_bytes(torch_bytes(1.0))
    real_copy = resume.shutil.copy2

    def copy_while_writing(src, dst, **kw):
        with open(src, "ab") as f:  # the framework appends while we copy
            f.write(b"\0" * 4096)
        return real_copy(src, dst, **kw)

    monkeypatch.setattr(resume.shutil, "copy2", copy_while_writing)
    callbacks = Callbacks()
    uploader = resume.ResumeUploader.attach(callbacks, storage, "run", tmp_path / "staging", every=1)
    callbacks.checkpoint(1, 3, ckpt)
    uploader.close(wait=True)
    assert uploader.uploaded == [] and complete(storage, "run") == []
    assert "changed while it was being copied" in uploader.skipped[0]
    assert not any((tmp_path / "staging").iterdir()), "nothing half-copied is left behind"


def test_each_upload_is_its_own_folder_and_a_corrupt_newest_falls_back(storage, tmp_path):
    """Uploads never rewrite a folder in place; a newest checkpoint that does not verify after the
    download is skipped for the previous complete one; only the newest two are kept."""
    callbacks = Callbacks()
    uploader = resume.ResumeUploader.attach(callbacks, storage, "run", tmp_path / "staging", every=1, attempt=2)
    ckpt = tmp_path / "last.pt"
    for epoch in (1, 2, 3):
        ckpt.write_bytes(torch_bytes(float(epoch)))
        callbacks.checkpoint(epoch, 9, ckpt)
        uploader.flush()
    uploader.close(wait=True)
    assert complete(storage, "run") == ["e000003-a2", "e000002-a2"]

    # The newest one's file is broken in storage, with a manifest that matches the broken bytes
    # (e.g. written so by a process that died mid-write): its download verifies against the
    # manifest, but the file is no whole checkpoint, so the one before is taken.
    folder = Path(storage.path(resume.PREFIX, "run", "e000003-a2"))
    broken = (folder / "state" / "last.pt").read_bytes()[:1000]
    (folder / "state" / "last.pt").write_bytes(broken)
    manifest = json.loads((folder / MANIFEST).read_text())
    from tasks.storage import sha256_file

    manifest["files"]["state/last.pt"] = {"size": len(broken), "sha256": sha256_file(folder / "state" / "last.pt")}
    (folder / MANIFEST).write_text(json.dumps(manifest))
    point = resume.fetch(storage, "run", tmp_path / "got")
    assert point is not None and point.epoch == 2 and point.folder == "e000002-a2"
    assert torch.load(point.path, weights_only=True)["epoch"] == 2.0
    assert resume.fetch(storage, "run", tmp_path / "got", before=2) is None  # nothing older is kept
    # `vtp train --resume RUN` reads where the newest complete checkpoint is without downloading it
    assert resume.latest_state(storage, "run")["epoch"] == 3
    storage.remove(resume.PREFIX, "run", "e000003-a2", MANIFEST)
    assert resume.latest_state(storage, "run")["epoch"] == 2

    resume.clear(storage, "run")
    assert resume.checkpoints(storage, "run") == [] and not storage.exists(resume.PREFIX, "run")


def test_a_fenced_attempt_uploads_nothing(storage, tmp_path):
    fenced = {"on": False}
    callbacks = Callbacks()
    uploader = resume.ResumeUploader.attach(callbacks, storage, "run", tmp_path / "staging", every=1,
                                            fenced=lambda: fenced["on"])
    ckpt = tmp_path / "last.pt"
    ckpt.write_bytes(torch_bytes(1.0))
    fenced["on"] = True  # a newer attempt of the run took over
    callbacks.checkpoint(1, 3, ckpt)
    uploader.close(wait=True)
    assert uploader.uploaded == [] and resume.checkpoints(storage, "run") == []


def test_verify_checkpoint_kinds(tmp_path):
    good = tmp_path / "good.pt"
    good.write_bytes(torch_bytes(1.0))
    assert resume.verify_checkpoint(good) is None
    data = bytearray(good.read_bytes())
    data[len(data) // 3] ^= 0xFF  # a flipped byte inside a member: CRC
    (tmp_path / "flipped.pt").write_bytes(bytes(data))
    assert "CRC" in (resume.verify_checkpoint(tmp_path / "flipped.pt") or "") or \
        "unreadable" in (resume.verify_checkpoint(tmp_path / "flipped.pt") or "")
    (tmp_path / "empty.pt").write_bytes(b"")
    assert "truncated" in resume.verify_checkpoint(tmp_path / "empty.pt")

    header = json.dumps({"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}).encode()
    whole = struct.pack("<Q", len(header)) + header + b"\0" * 16
    folder = tmp_path / "hf"
    folder.mkdir()
    (folder / "model.safetensors").write_bytes(whole)
    (folder / "config.json").write_text("{}")
    assert resume.verify_checkpoint(folder) is None
    (folder / "model.safetensors").write_bytes(whole[:-5])
    assert "truncated" in resume.verify_checkpoint(folder)
