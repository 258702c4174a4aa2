"""trainers.common: device, seeding, options, epoch bookkeeping, atomic writes, ImageFolder splits,
the evaluation report and prediction records; and DETR matching through scipy's Hungarian
assignment. Real files in tmp_path, real torch."""

from __future__ import annotations

import csv
import itertools
import json
import os
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from core.contracts import PER_CLASS
from core.errors import TrainerError
from trainers import common
from trainers.common import EpochTracker
from trainers.common import report as common_report
from trainers.common.predict import classification, detection

# ------------------------------------------------------------------------------------------ device


def test_auto_and_cpu():
    device, note = common.resolve_device("auto")
    expected = "cuda" if torch.cuda.is_available() else "mps" if torch.backends.mps.is_available() else "cpu"
    assert device.type == expected and note is None
    assert common.resolve_device("cpu") == (torch.device("cpu"), None)
    assert common.resolve_device(" CPU ")[0].type == "cpu"


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the messages of a machine without CUDA")
@pytest.mark.parametrize("device", ["0", "cuda", "cuda:0", "0,1"])
def test_cuda_without_a_gpu_is_refused_with_what_to_use(device):
    with pytest.raises(TrainerError, match="none is visible here: use device='auto' or 'cpu'"):
        common.resolve_device(device)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_one_gpu_per_run_with_a_note():
    assert common.resolve_device("cuda") == (torch.device("cuda:0"), None)
    device, note = common.resolve_device("0,1")
    assert device == torch.device("cuda:0") and "one GPU per run" in note
    with pytest.raises(TrainerError, match="only"):
        common.resolve_device(str(torch.cuda.device_count()))


@pytest.mark.skipif(torch.backends.mps.is_available(), reason="checks a machine without MPS")
def test_mps_only_where_it_is_available():
    with pytest.raises(TrainerError, match="not available"):
        common.resolve_device("mps")


def test_not_a_device():
    with pytest.raises(TrainerError, match="is not a device"):
        common.resolve_device("tpu")


# --------------------------------------------------------------------------------- seeds, options


def test_seed_everything_repeats_every_generator():
    def draw():
        return random.random(), float(np.random.rand()), float(torch.rand(1))

    common.seed_everything(7)
    first = draw()
    common.seed_everything(7)
    assert draw() == first
    common.seed_everything(8)
    assert draw() != first


@dataclass
class _Options:
    lr: float = 0.1
    amp: bool = True


def test_options_from_overrides():
    assert common.options_from_overrides(_Options, {"lr": 0.5}, "timm") == _Options(lr=0.5)
    with pytest.raises(TrainerError, match=r"timm overrides bogus, zz are not supported; accepted: amp, lr"):
        common.options_from_overrides(_Options, {"zz": 1, "bogus": 2}, "timm")


# ------------------------------------------------------------------------------------------ epochs

MAIN = "metrics/accuracy_top1"


def test_best_epoch_by_the_main_metric_ties_go_to_the_lower_loss():
    t = EpochTracker(MAIN, patience=0, epochs=5)
    assert t.record(1, {MAIN: 0.5, "val/loss": 1.0, "train/loss": 2.0, "lr": 0.1})
    assert not t.record(2, {MAIN: 0.4, "val/loss": 0.5})
    assert t.record(3, {MAIN: 0.5, "val/loss": 0.9})  # a tie, lower loss
    assert not t.record(4, {MAIN: 0.5, "val/loss": 0.9})
    assert t.best_epoch == 3 and [h["epoch"] for h in t.history] == [1, 2, 3, 4]
    assert t.best_metrics() == {MAIN: 0.5, "val/loss": 0.9}


def test_the_main_metric_is_the_specs_not_top1():
    t = EpochTracker("metrics/mAP50-95(B)", patience=0, epochs=3)
    t.record(1, {"metrics/mAP50-95(B)": 0.2, MAIN: 0.9})
    assert t.record(2, {"metrics/mAP50-95(B)": 0.3, MAIN: 0.1})
    with pytest.raises(KeyError):
        t.record(3, {MAIN: 1.0})


def test_early_stopping_by_patience_not_after_the_last_epoch():
    t = EpochTracker(MAIN, patience=2, epochs=10)
    t.record(1, {MAIN: 0.5})
    t.record(2, {MAIN: 0.4})
    assert not t.stop_early(2)
    t.record(3, {MAIN: 0.4})
    assert t.stop_early(3) and "has not improved for 2 epochs (best: epoch 1)" in t.early_stop_note(3)
    assert not EpochTracker(MAIN, patience=0, epochs=10).stop_early(9)  # 0 = off
    last = EpochTracker(MAIN, patience=1, epochs=2)
    last.record(1, {MAIN: 0.5})
    last.record(2, {MAIN: 0.1})
    assert not last.stop_early(2)


def test_restore_a_resumed_history():
    t = EpochTracker(MAIN, patience=0, epochs=4)
    t.restore([{"epoch": 1, MAIN: 0.3}, {"epoch": 2, MAIN: 0.6}, {"epoch": 3, MAIN: 0.5}], best_epoch=2)
    assert t.best == {"epoch": 2, MAIN: 0.6}
    assert not t.record(4, {MAIN: 0.55}) and t.best_epoch == 2
    with pytest.raises(TrainerError):
        EpochTracker(MAIN, 0, 1).best_metrics()


# ----------------------------------------------------------------------------------- atomic writes


def _leftovers(folder: Path) -> list[str]:
    return [p.name for p in folder.iterdir() if p.name.endswith(".tmp")]


def test_atomic_writes_replace_whole_files_and_leave_nothing_behind(tmp_path):
    target = tmp_path / "sub" / "args.yaml"
    assert common.write_text_atomic(target, "a: 1\n") == target
    common.write_bytes_atomic(target, b"a: 2\n")
    assert target.read_text() == "a: 2\n" and _leftovers(target.parent) == []


def test_a_failed_atomic_write_keeps_the_old_file(tmp_path):
    target = common.write_text_atomic(tmp_path / "results.csv", "old")
    with pytest.raises(RuntimeError), common.atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed")
    assert target.read_text() == "old" and _leftovers(tmp_path) == []


def test_save_torch_and_link_atomic(tmp_path):
    last = common.save_torch_atomic({"w": torch.ones(3)}, tmp_path / "weights" / "last.pt")
    assert torch.equal(torch.load(last, weights_only=True)["w"], torch.ones(3))
    copy = tmp_path / "other" / "last.pt"
    common.link_atomic(last, copy)
    assert copy.read_bytes() == last.read_bytes() and os.stat(copy).st_ino == os.stat(last).st_ino
    assert _leftovers(copy.parent) == []


def test_replace_and_copy_folders(tmp_path):
    src = tmp_path / "last"
    (src / "deep").mkdir(parents=True)
    (src / "deep" / "model.safetensors").write_bytes(b"new")
    best = tmp_path / "best"
    best.mkdir()
    (best / "stale.bin").write_bytes(b"old")
    common.copy_folder_atomic(src, best)
    assert sorted(p.relative_to(best).as_posix() for p in best.rglob("*")) == ["deep", "deep/model.safetensors"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best", "last"]


# ---------------------------------------------------------------------------------- ImageFolder


def _image(path: Path, colour=(200, 10, 10)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (16, 16), colour).save(path)
    return path


def test_image_folder_classes_and_val_alias(tmp_path):
    for split in ("train", "valid"):
        for c in ("dog", "cat"):
            _image(tmp_path / split / c / "a.jpg")
    (tmp_path / "train" / ".cache").mkdir()
    assert common.image_folder(tmp_path) == (["cat", "dog"], tmp_path / "train", tmp_path / "valid")


def test_image_folder_errors(tmp_path):
    with pytest.raises(TrainerError, match="no train/ folder"):
        common.image_folder(tmp_path)
    _image(tmp_path / "train" / "cat" / "a.jpg")
    with pytest.raises(TrainerError, match="1 class folder"):
        common.image_folder(tmp_path)
    _image(tmp_path / "train" / "dog" / "a.jpg")
    with pytest.raises(TrainerError, match="no val/ folder"):
        common.image_folder(tmp_path)


# ------------------------------------------------------------------------------------------ report


def test_results_csv_is_rewritten_whole(tmp_path):
    path = tmp_path / "results.csv"
    common_report.write_results_csv(path, [])
    assert not path.exists()
    history = [{"epoch": 1, "train/loss": 0.123456789, MAIN: 0.5}, {"epoch": 2, "train/loss": 0.1, MAIN: 0.75}]
    common_report.write_results_csv(path, history)
    rows = list(csv.DictReader(path.open()))
    assert rows == [{"epoch": "1", "train/loss": "0.123457", MAIN: "0.5"}, {"epoch": "2", "train/loss": "0.1", MAIN: "0.75"}]
    assert _leftovers(tmp_path) == []


def test_classification_report_files(tmp_path):
    images = [str(_image(tmp_path / "val" / f"{i}.jpg")) for i in range(4)]
    data = {"y_true": [0, 0, 1, 1], "y_pred": [0, 1, 1, 1], "images": images}
    files = common_report.evaluation_report(tmp_path, "classify", ["cat", "dog"], data, [])
    per_class = json.loads((tmp_path / PER_CLASS).read_text())
    assert per_class["task"] == "classify"
    assert per_class["rows"][0] == {"class": "cat", "support": 2, "accuracy": 0.5, "precision": 1.0, "recall": 0.5,
                                    "f1": 0.6667}
    assert {p.name for p in files} == {"per_class.json", "confusion_matrix.png", "val_pred_grid.jpg"}


def test_box_iou():
    a = np.array([[0, 0, 10, 10]], float)
    b = np.array([[0, 0, 10, 10], [5, 0, 15, 10], [20, 20, 30, 30]], float)
    np.testing.assert_allclose(common_report.box_iou(a, b), [[1.0, 50 / 150, 0.0]])
    assert common_report.box_iou(a, np.zeros((0, 4))).shape == (1, 0)


# ----------------------------------------------------------------------------------- predictions


def test_prediction_records_and_drawing():
    image = Image.new("RGB", (64, 48), (0, 0, 0))
    record = classification(image, [("cat", 0.9), ("dog", 0.1)])
    assert record["task"] == "classify" and record["predictions"][0] == {"class": "cat", "confidence": 0.9}
    assert record["plot"].size == (64, 48) and record["plot"].getbbox() is not None  # text drawn
    boxes = detection(image, [("cat", 0.8, [4, 4, 30, 30])])
    assert boxes["predictions"] == [{"class": "cat", "confidence": 0.8, "box": [4.0, 4.0, 30.0, 30.0]}]
    assert boxes["plot"].getpixel((4, 20)) == (255, 0, 0) and image.getbbox() is None  # a copy is drawn on


# ------------------------------------------------------------------------------- DETR matching


# Cost matrices and the assignments vtp's own Hungarian matcher (removed) gave for them
REMOVED_MATCHER = [
    ([[0.637, 0.27, 0.041], [0.017, 0.813, 0.913], [0.607, 0.729, 0.544]], [0, 1, 2], [2, 0, 1]),
    ([[0.935, 0.816, 0.003, 0.857, 0.034], [0.73, 0.176, 0.863, 0.541, 0.3], [0.423, 0.028, 0.124, 0.671, 0.647]],
     [0, 1, 2], [2, 4, 1]),
    ([[0.615, 0.384, 0.997], [0.981, 0.686, 0.65], [0.688, 0.389, 0.135], [0.721, 0.525, 0.31],
      [0.486, 0.889, 0.934]], [0, 2, 4], [1, 2, 0]),
    ([[0.358, 0.572, 0.322, 0.594], [0.338, 0.392, 0.89, 0.227], [0.623, 0.084, 0.833, 0.787],
      [0.239, 0.876, 0.059, 0.336]], [0, 1, 2, 3], [0, 3, 1, 2]),
    ([[0.15, 0.45, 0.796, 0.231, 0.052, 0.405]], [0], [4]),
]


def _brute_force(cost: np.ndarray) -> float:
    n, m = cost.shape
    if n <= m:
        return min(sum(cost[i, j] for i, j in zip(range(n), cols, strict=True))
                   for cols in itertools.permutations(range(m), n))
    return _brute_force(cost.T)


@pytest.mark.parametrize(("cost", "rows", "cols"), REMOVED_MATCHER)
def test_scipy_assignment_equals_the_removed_matcher_and_the_optimum(cost, rows, cols):
    from scipy.optimize import linear_sum_assignment

    cost = np.array(cost)
    r, c = linear_sum_assignment(cost)
    assert r.tolist() == rows and c.tolist() == cols
    assert cost[r, c].sum() == pytest.approx(_brute_force(cost))


def test_detr_losses_match_with_scipy_unpatched():
    import scipy.optimize
    import transformers.loss.loss_for_object_detection as detr_loss

    import trainers.huggingface.metrics as hf_metrics
    import trainers.huggingface.session  # noqa: F401 - importing the trainer patches nothing

    assert detr_loss.linear_sum_assignment is scipy.optimize.linear_sum_assignment
    assert not hasattr(hf_metrics, "linear_sum_assignment") and not hasattr(hf_metrics, "install_matcher_fallback")
    matcher = detr_loss.HungarianMatcher(class_cost=1, bbox_cost=1, giou_cost=1)
    logits = torch.tensor([[[4.0, 0.0], [0.0, 4.0], [0.0, 0.0]]])  # 3 queries, 2 classes (+ no-object is left out)
    boxes = torch.tensor([[[0.2, 0.2, 0.1, 0.1], [0.7, 0.7, 0.2, 0.2], [0.5, 0.5, 0.9, 0.9]]])
    targets = [{"class_labels": torch.tensor([1, 0]), "boxes": torch.tensor([[0.7, 0.7, 0.2, 0.2], [0.2, 0.2, 0.1, 0.1]])}]
    (queries, objects), = matcher({"logits": logits, "pred_boxes": boxes}, targets)
    assert queries.tolist() == [0, 1] and objects.tolist() == [1, 0]
