"""Real, tiny training runs of both trainer plugins on generated data (about a minute on 2 cores).

Every run is offline-safe: pretrained=False builds from the model definition; the pretrained=True
cases replace the framework's download with one that hangs, and check that the run falls back to
scratch within ``download_timeout_s`` and says so.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest
import torch
from PIL import Image

from core.contracts import Callbacks, DatasetInfo, TrainContext
from core.frameworks import capabilities
from core.spec import parse_spec
from tasks.dataset_formats import prepare_local
from tasks.samples import make_sample

pytestmark = [pytest.mark.integration, pytest.mark.slow]
SIZE = 64
YOLO_MODELS = {
    "detect": "yolo11n",
    "segment": "yolo11n-seg",
    "classify": "yolo11n-cls",
    "pose": "yolo11n-pose",
    "obb": "yolo11n-obb",
}


@pytest.fixture(scope="module")
def datasets(tmp_path_factory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("samples")
    return {
        task: make_sample(f"shapes-{task}", base / task, n_train=8, n_val=4, image_size=SIZE)
        for task in YOLO_MODELS
    }


@pytest.fixture
def hanging_download(monkeypatch):
    """Make every framework download hang (as on a network that drops packets) until the test ends."""
    release = threading.Event()

    def hang(*args, **kwargs):
        release.wait(60)
        raise ConnectionError("released by the test")

    import huggingface_hub

    _import_ultralytics()
    import ultralytics.utils.downloads

    monkeypatch.setattr(ultralytics.utils.downloads, "safe_download", hang)
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", hang)
    monkeypatch.setattr("core.weights.reachable", lambda *_a, **_k: True)  # connects, then hangs
    yield
    release.set()


def _import_ultralytics() -> None:
    """Import ultralytics the way the trainer does (settings under VTP_HOME, offline-safe)."""
    from trainers.ultralytics.env import import_ultralytics

    import_ultralytics()


class Recorder:
    """Callbacks plus what they saw."""

    def __init__(self, stop: bool = False) -> None:
        self.callbacks = Callbacks()
        self.heartbeats = 0
        self.logs: list[str] = []
        self.callbacks.add("on_heartbeat", self._beat)
        self.callbacks.add("on_log", lambda message: self.logs.append(message))
        if stop:
            self.callbacks.add_stop_check(lambda: True)

    def _beat(self) -> None:
        self.heartbeats += 1


def _context(root: Path, task: str, work: Path, rec: Recorder, timeout_s: float = 10.0) -> TrainContext:
    info: DatasetInfo = prepare_local(root, task, work / "dataset")
    return TrainContext(
        workdir=work / "run",
        dataset=info,
        callbacks=rec.callbacks,
        weights_dir=work / "weights",
        download_timeout_s=timeout_s,
    )


def _spec(model: str, **kw):
    base = {
        "model": model,
        "dataset": "shapes",
        "epochs": 1,
        "image_size": SIZE,
        "batch_size": 8,
        "workers": 0,
        "pretrained": False,
    }
    return parse_spec({**base, **kw})


def _assert_epochs(rec: Recorder, spec, framework: str) -> None:
    wanted = capabilities(framework).metrics[spec.task]
    assert [e["epoch"] for e in rec.callbacks.epochs] == list(range(1, spec.epochs + 1))
    for e in rec.callbacks.epochs:
        assert e["epochs"] == spec.epochs
        missing = [m for m in wanted if m not in e["metrics"]]
        assert not missing, f"epoch {e['epoch']} lacks {missing}"
    assert rec.heartbeats >= spec.epochs


# ------------------------------------------------------------------------------------ ultralytics


@pytest.mark.parametrize("task", list(YOLO_MODELS))
def test_ultralytics_trains_each_task(task, datasets, tmp_path, monkeypatch):
    from trainers.ultralytics import train

    _import_ultralytics()
    from ultralytics import YOLO

    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)  # nothing may land in the working directory
    rec = Recorder()
    epochs = 2 if task == "detect" else 1
    plots = task == "classify"  # plots cost seconds; one task checks them
    spec = _spec(YOLO_MODELS[task], epochs=epochs, overrides={"plots": plots})
    result = train(spec, _context(datasets[task], task, tmp_path, rec))

    _assert_epochs(rec, spec, "ultralytics")
    assert result.epochs_completed == epochs and not result.stopped_early
    assert result.best_checkpoint.is_file() and result.last_checkpoint.is_file()
    assert result.best_checkpoint.is_relative_to(tmp_path / "run")
    assert capabilities("ultralytics").main_metric[task] in result.metrics
    names = {p.name for p in result.artifacts}
    assert {"results.csv", "args.yaml", "per_class.json"} <= names
    table = json.loads(next(p for p in result.artifacts if p.name == "per_class.json").read_text())
    assert table["task"] == task and [row["class"] for row in table["rows"]] == ["circle", "square", "triangle"]
    if plots:
        assert any(n.endswith(".png") for n in names)
    assert any("from scratch" in n for n in result.notes) and not result.pretrained_used
    assert any("Starting training" in line for line in rec.logs)  # ultralytics' log is forwarded
    assert list(cwd.iterdir()) == []

    image = next(p for p in sorted(datasets[task].rglob("*.jpg")) if "val" in p.parts)
    predictions = YOLO(str(result.best_checkpoint)).predict(str(image), imgsz=SIZE, verbose=False)
    assert len(predictions) == 1


def test_ultralytics_pretrained_falls_back_to_scratch_within_timeout(datasets, tmp_path, hanging_download):
    from trainers.ultralytics import train

    rec = Recorder()
    spec = _spec("yolo11n-cls", pretrained=True, overrides={"plots": False})
    started = time.monotonic()
    result = train(spec, _context(datasets["classify"], "classify", tmp_path, rec, timeout_s=1.0))

    assert time.monotonic() - started < 60
    assert not result.pretrained_used
    note = next(n for n in result.notes if "could not be downloaded" in n)
    assert "within 1 s" in note and "training from scratch" in note and "yolo11n-cls.pt" in note
    assert note in rec.logs
    assert result.best_checkpoint.is_file()


def test_ultralytics_stops_when_asked(datasets, tmp_path):
    from trainers.ultralytics import train

    rec = Recorder(stop=True)
    spec = _spec("yolo11n-cls", epochs=3, overrides={"plots": False})
    result = train(spec, _context(datasets["classify"], "classify", tmp_path, rec))

    assert result.stopped_early
    assert result.epochs_completed == 1 and len(rec.callbacks.epochs) == 1
    assert result.best_checkpoint.is_file() and result.last_checkpoint.is_file()


# ------------------------------------------------------------------------------------------ timm


def test_timm_trains_and_checkpoint_predicts(datasets, tmp_path):
    from trainers.timm import load_checkpoint, predict, train

    rec = Recorder()
    spec = _spec("resnet18", epochs=2, overrides={"color_jitter": 0.2})
    result = train(spec, _context(datasets["classify"], "classify", tmp_path, rec))

    _assert_epochs(rec, spec, "timm")
    assert result.epochs_completed == 2 and not result.stopped_early
    assert result.best_checkpoint.is_file() and result.last_checkpoint.is_file()
    assert set(result.metrics) == {"val/loss", "metrics/accuracy_top1", "metrics/accuracy_top5"}
    assert {p.name for p in result.artifacts} >= {"results.csv", "args.yaml", "results.png", "per_class.json",
                                                  "confusion_matrix.png", "val_pred_grid.jpg"}
    rows = (result.best_checkpoint.parents[1] / "results.csv").read_text().splitlines()
    assert rows[0].startswith("epoch,") and len(rows) == 3

    ckpt = torch.load(result.last_checkpoint, map_location="cpu", weights_only=True)
    assert {"model", "optimizer", "scheduler", "epoch", "spec", "classes", "pretrained_cfg"} <= set(ckpt)
    assert ckpt["epoch"] == 2
    # best.pt is published: weights and what loading needs, no optimizer/scheduler/resume state (issue 14)
    best = torch.load(result.best_checkpoint, map_location="cpu", weights_only=True)
    assert not {"optimizer", "scheduler", "resume"} & set(best) and {"model", "classes", "data_config"} <= set(best)
    weight_bytes = sum(t.numel() * t.element_size() for t in best["model"].values())
    assert result.best_checkpoint.stat().st_size < weight_bytes * 1.05 + 200_000, (
        result.best_checkpoint.stat().st_size, weight_bytes)
    assert result.last_checkpoint.stat().st_size > weight_bytes * 1.5  # AdamW's two moments live in last.pt

    model, classes = load_checkpoint(result.best_checkpoint)
    assert classes == ["circle", "square", "triangle"]
    with torch.no_grad():
        logits = model(torch.zeros(2, 3, SIZE, SIZE))
    assert logits.shape == (2, len(classes))
    image = Image.open(next((datasets["classify"] / "val").rglob("*.jpg")))
    top = predict(result.best_checkpoint, [image], top_k=2)
    assert len(top) == 1 and len(top[0]) == 2 and top[0][0][0] in classes


def test_timm_uses_local_weights(datasets, tmp_path):
    import timm
    from safetensors.torch import save_file

    from trainers.timm import train

    weights = tmp_path / "weights" / "timm"
    weights.mkdir(parents=True)
    save_file(timm.create_model("resnet18", pretrained=False).state_dict(), weights / "resnet18.safetensors")
    rec = Recorder()
    result = train(
        _spec("resnet18", pretrained=True), _context(datasets["classify"], "classify", tmp_path, rec)
    )

    assert result.pretrained_used
    assert any("using pretrained weights for resnet18" in n for n in result.notes)


def test_timm_pretrained_falls_back_to_scratch_within_timeout(datasets, tmp_path, hanging_download):
    from trainers.timm import train

    rec = Recorder()
    started = time.monotonic()
    result = train(
        _spec("resnet18", pretrained=True),
        _context(datasets["classify"], "classify", tmp_path, rec, timeout_s=1.0),
    )

    assert time.monotonic() - started < 30
    assert not result.pretrained_used
    assert any("within 1 s" in n and "training from scratch" in n for n in result.notes)


def test_timm_stops_when_asked(datasets, tmp_path):
    from trainers.timm import train

    rec = Recorder(stop=True)
    result = train(_spec("resnet18", epochs=3), _context(datasets["classify"], "classify", tmp_path, rec))

    assert result.stopped_early and result.epochs_completed == 1
    assert len(rec.callbacks.epochs) == 1
    assert result.best_checkpoint.is_file() and result.last_checkpoint.is_file()


# ------------------------------------------------------------------------------------ huggingface


def test_huggingface_stops_when_asked(datasets, tmp_path):
    """transformers' Trainer in one process: a stop asked for at the first batch ends the run after that
    epoch is evaluated and saved, with the stop in the result and its notes."""
    from tests.integration.test_huggingface_flow import tiny_model
    from trainers.huggingface import train

    rec = Recorder(stop=True)
    spec = _spec(str(tiny_model("classify", tmp_path / "vit")), task="classify", epochs=3, batch_size=4)
    result = train(spec, _context(datasets["classify"], "classify", tmp_path, rec))

    assert result.stopped_early and result.epochs_completed == 1 and len(rec.callbacks.epochs) == 1
    assert "stopped on request after epoch 1 of 3." in result.notes
    assert (result.best_checkpoint / "vtp.json").is_file() and (result.last_checkpoint / "vtp.json").is_file()
    state = torch.load(result.last_checkpoint.parent / "resume.pt", weights_only=True)
    assert state["epoch"] == 1 and state["step"] == 1  # the stop came after the first of 2 steps
