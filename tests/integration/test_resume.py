"""Resume: each trainer reports its resumable checkpoint, the flow's uploader puts it in storage
(manifest last), and a new attempt given that checkpoint goes on after its epoch with the
optimizer and schedule restored: no epoch trained twice, none lost. Every framework on a storage
folder (file://); timm, and the half-uploaded checkpoint, on S3 (moto's server) as well."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from core.contracts import Callbacks, TrainContext
from core.spec import parse_spec
from tasks import resume
from tasks.dataset_formats import prepare_local
from tasks.samples import make_sample
from tasks.storage import MANIFEST, Storage

pytestmark = [pytest.mark.integration, pytest.mark.slow]
SIZE = 64
EPOCHS = 3


def tiny_vit(folder: Path) -> Path:
    from transformers import ViTConfig

    ViTConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64, image_size=SIZE,
              patch_size=16).save_pretrained(folder)
    return folder


CASES = {
    "ultralytics": ("detect", lambda tmp: "yolo11n"),
    "timm": ("classify", lambda tmp: "resnet18"),
    "huggingface": ("classify", lambda tmp: str(tiny_vit(tmp / "vit"))),
}


def _train(framework: str, spec, root: Path, task: str, work: Path, callbacks: Callbacks,
           resume_from: Path | None = None):
    from core.frameworks import get_trainer

    info = prepare_local(root, task, work / "dataset")
    ctx = TrainContext(workdir=work / "run", dataset=info, callbacks=callbacks, weights_dir=work / "weights",
                       resume_from=resume_from)
    return get_trainer(framework)(spec, ctx)


def _results_epochs(result) -> list[int]:
    path = next(p for p in result.artifacts if Path(p).name == "results.csv")
    with open(path) as f:
        return [int(float(row["epoch"] if "epoch" in row else row[next(iter(row))])) for row in csv.DictReader(
            line.replace(" ", "") for line in f)]


def _storage(backend: str, tmp_path: Path, request) -> Storage:
    """A fresh storage root: a folder (file), or a fresh prefix of moto's bucket (s3)."""
    if backend == "s3":
        return Storage(request.getfixturevalue("s3_storage"))
    return Storage(f"file://{tmp_path / 'storage'}")


@pytest.mark.parametrize(("framework", "backend"), [*((fw, "file") for fw in CASES), ("timm", "s3")])
def test_trainer_resumes_after_its_last_uploaded_checkpoint(framework, backend, tmp_path, request):
    task, model = CASES[framework]
    # on S3 what differs is the storage: timm's smallest model keeps the uploads to moto quick
    name = "test_resnet" if backend == "s3" else model(tmp_path)
    root = make_sample(f"shapes-{task}", tmp_path / "data", n_train=8, n_val=4, image_size=SIZE)
    spec = parse_spec({"model": name, "dataset": "shapes", "task": task, "epochs": EPOCHS,
                       "image_size": SIZE, "batch_size": 4, "workers": 0, "pretrained": False, "patience": 0})
    storage = _storage(backend, tmp_path, request)

    # First attempt: every epoch's checkpoint goes to storage (the last epoch's is not needed).
    first = Callbacks()
    uploader = resume.ResumeUploader.attach(first, storage, "run-1", tmp_path / "staging", every=1,
                                            framework=framework)
    seen: list[int] = []
    first.add("on_checkpoint", lambda epoch, epochs, path: seen.append(epoch))
    full = _train(framework, spec, root, task, tmp_path / "a", first)
    uploader.close(wait=True)
    assert seen == [1, 2, 3]
    assert uploader.uploaded[-1] == 2 and not uploader.errors and not uploader.skipped
    assert [(e, name) for e, _, name in resume.checkpoints(storage, "run-1")] == [
        (2, "e000002-a1"), (1, "e000001-a1")], "the newest two complete checkpoints are kept"
    assert storage.exists(resume.PREFIX, "run-1", "e000002-a1", MANIFEST)
    lr_at = {e["epoch"]: {k: v for k, v in e["metrics"].items() if k.startswith("lr")} for e in first.epochs}

    # The run "crashed" during epoch 3: a new attempt on another machine fetches the checkpoint.
    point = resume.fetch(storage, "run-1", tmp_path / "b" / "resume")
    assert point is not None and point.epoch == 2 and point.epochs == EPOCHS
    second = Callbacks()
    logs: list[str] = []
    second.add("on_log", lambda message: logs.append(message))
    result = _train(framework, spec, root, task, tmp_path / "b", second, resume_from=point.path)

    assert [e["epoch"] for e in second.epochs] == [3], "only the epoch after the checkpoint is trained"
    assert result.epochs_completed == EPOCHS
    assert any("resumed after epoch 2" in line.lower() for line in logs), logs
    assert _results_epochs(result) == [1, 2, 3], "the run's history holds every epoch exactly once"
    # The schedule goes on where it was: epoch 3's learning rate is the uninterrupted run's.
    resumed_lr = {k: v for k, v in second.epochs[0]["metrics"].items() if k.startswith("lr")}
    assert resumed_lr and resumed_lr == pytest.approx(lr_at[3], rel=1e-6)
    assert Path(result.best_checkpoint).exists() and Path(result.last_checkpoint).exists()
    assert full.epochs_completed == EPOCHS

    resume.clear(storage, "run-1")
    assert not storage.exists(resume.PREFIX, "run-1")


def _torch_file(path: Path, value: float) -> bytes:
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"epoch": value, "w": torch.full((64, 64), value)}, path)
    return path.read_bytes()


@pytest.mark.parametrize("backend", ["file", "s3"])
def test_half_uploaded_checkpoint_is_never_taken(backend, tmp_path, request):
    """A checkpoint whose upload was cut off (no manifest) or was changed (checksum) is not resumed
    from; the previous complete one is taken instead, and with none left the run starts over."""
    storage = _storage(backend, tmp_path, request)
    ckpt = tmp_path / "weights"
    _torch_file(ckpt / "last.pt", 1.0)
    callbacks = Callbacks()
    uploader = resume.ResumeUploader.attach(callbacks, storage, "r", tmp_path / "staging", every=1)
    callbacks.checkpoint(1, 5, ckpt)
    uploader.flush()
    _torch_file(ckpt / "last.pt", 2.0)
    callbacks.checkpoint(2, 5, ckpt)
    uploader.close(wait=True)
    assert resume.fetch(storage, "r", tmp_path / "got").epoch == 2

    storage.remove(resume.PREFIX, "r", "e000002-a1", MANIFEST)  # as if cut off before the manifest
    assert resume.fetch(storage, "r", tmp_path / "got2").epoch == 1, "falls back to the previous complete one"

    storage.write_bytes(b"y" * 1000, resume.PREFIX, "r", "e000001-a1", "state", "weights", "last.pt")
    assert resume.fetch(storage, "r", tmp_path / "got3") is None  # checksum differs: start over instead


def test_vtp_train_resume_continues_a_finished_run(stack_env):
    """`vtp train --resume RUN epochs=N`: a new run starts from RUN's final weights for N more epochs."""
    import re

    from core.settings import get_settings
    from tasks.storage import read_summary
    from tests.integration.conftest import vtp

    base = ["model=resnet18", "dataset=shapes-classify", "epochs=1", "image_size=32", "batch_size=8", "workers=0",
            "pretrained=false"]
    first = vtp("train", *base, "--local")
    assert first.returncode == 0, first.stderr[-2000:]
    run_id = re.search(r"/runs/([0-9a-f-]{36})/checkpoints/", first.stdout).group(1)

    more = vtp("train", "--resume", run_id, "epochs=2", "--local")
    assert more.returncode == 0, more.stderr[-2000:]
    assert f"continuing run {run_id}" in more.stdout
    new_id = re.search(r"/runs/([0-9a-f-]{36})/checkpoints/", more.stdout).group(1)
    assert new_id != run_id
    summary = read_summary(get_settings(), new_id)
    assert summary["extends"] == run_id and summary["spec"]["extends"] == run_id
    assert summary["epochs_completed"] == 2 and summary["spec"]["model"] == "resnet18"
    assert any("final weights of the run being continued" in n for n in summary["notes"]), summary["notes"]

    wrong = vtp("train", "--resume", "no-such-run", "--local")
    assert wrong.returncode != 0 and "neither finished outputs nor a resumable checkpoint" in wrong.stderr
    assert "Traceback" not in wrong.stderr


@pytest.mark.parametrize(("slots", "first_devices"), [(1, None), (2, "cpu:2")])
def test_pool_slots_limit_concurrent_training(stack_env, monkeypatch, slots, first_devices):
    """VTP_POOL_SLOTS=1: a second run waits (heartbeating) for the pool's one training slot, held
    through Prefect's global concurrency limit `vtp up` creates, and gets it once the first is done.
    VTP_POOL_SLOTS=2 and a first run on two devices (cpu:2): it holds both slots, one per device."""
    import logging
    import threading

    from cli.prefect_setup import ensure_pool_slots, prefect_api
    from core.settings import Settings
    from tasks.train_steps import pool_slot, slot_limit_name

    monkeypatch.setenv("VTP_POOL_SLOTS", str(slots))
    settings = Settings()
    limits = ensure_pool_slots(settings)
    name = slot_limit_name(settings.pool_name("timm"))
    assert limits[name] == slots
    spec = parse_spec({"model": "resnet18", "dataset": "d"})
    first = parse_spec({"model": "resnet18", "dataset": "d", "devices": first_devices}) if first_devices else spec
    first_in, release, second_in = threading.Event(), threading.Event(), threading.Event()
    beats: list[int] = []
    waiting: list[str] = []

    class Log(logging.LoggerAdapter):
        def info(self, msg, *args, **kwargs):
            waiting.append(msg % args)

    def hold(entered: threading.Event, until: threading.Event | None, run=spec) -> None:
        callbacks = Callbacks()
        callbacks.add("on_heartbeat", lambda: beats.append(1))
        with prefect_api(settings), pool_slot(run, settings, callbacks, Log(logging.getLogger("t"), {})):
            entered.set()
            if until is not None:
                until.wait(120)

    a = threading.Thread(target=hold, args=(first_in, release, first))
    a.start()
    assert first_in.wait(60)
    b = threading.Thread(target=hold, args=(second_in, None))
    b.start()
    assert not second_in.wait(15), "the second run must wait while the only slot is taken"
    assert any("slots of" in w and "taken" in w for w in waiting) and beats, (waiting, beats)
    release.set()
    a.join(60)
    assert second_in.wait(60), "the slot is handed on once the first run is done"
    b.join(60)
    monkeypatch.setenv("VTP_POOL_SLOTS", "0")
    ensure_pool_slots(Settings())  # back to no limit for the other tests on this stack
