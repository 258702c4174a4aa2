from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import yaml

from core.errors import DatasetError
from tasks.dataset_formats import prepare_local
from tasks.samples import CLASSES, SAMPLES, make_sample
from tasks.validation import validate

COLUMNS = {"detect": {5}, "obb": {9}, "pose": {5 + 4 * 3}}


def _digest(root: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file():
            h.update(str(p.relative_to(root)).encode())
            h.update(p.read_bytes())
    return h.hexdigest()


@pytest.mark.parametrize("name", list(SAMPLES))
def test_every_sample_validates_clean(tmp_path, name):
    root = make_sample(name, tmp_path / name)
    report = validate(root, SAMPLES[name])
    assert report.problems == [], report.summary()
    assert report.counts == {"train": 24, "val": 8}
    assert report.classes == list(CLASSES)


@pytest.mark.parametrize("name", [n for n, t in SAMPLES.items() if t != "classify"])
def test_yolo_samples_write_ultralytics_layout(tmp_path, name):
    task = SAMPLES[name]
    root = make_sample(name, tmp_path / "ds", n_train=5, n_val=3, image_size=64)
    data = yaml.safe_load((root / "data.yaml").read_text())
    assert data["path"] == "." and data["train"] == "images/train" and data["val"] == "images/val"
    assert data["names"] == {0: "circle", 1: "square", 2: "triangle"}
    assert ("kpt_shape" in data) == (task == "pose")
    if task == "pose":
        assert data["kpt_shape"] == [4, 3] and sorted(data["flip_idx"]) == [0, 1, 2, 3]
    assert len(list((root / "images/train").glob("*.jpg"))) == 5
    assert len(list((root / "labels/val").glob("*.txt"))) == 3
    for lbl in (root / "labels").rglob("*.txt"):
        rows = [line.split() for line in lbl.read_text().splitlines()]
        assert 1 <= len(rows) <= 3
        for row in rows:
            assert row[0] in {"0", "1", "2"}
            if task == "segment":
                assert len(row) >= 7 and len(row) % 2 == 1
            else:
                assert len(row) in COLUMNS[task]
            coords = [float(v) for i, v in enumerate(row[1:]) if not (task == "pose" and i >= 4 and (i - 4) % 3 == 2)]
            assert all(0 <= v <= 1 for v in coords)


def test_classify_sample_is_imagefolder(tmp_path):
    root = make_sample("shapes-classify", tmp_path / "cls", n_train=6, n_val=3)
    for split, n in (("train", 2), ("val", 1)):
        assert sorted(p.name for p in (root / split).iterdir()) == list(CLASSES)
        assert all(len(list((root / split / c).glob("*.jpg"))) == n for c in CLASSES)
    assert not (root / "data.yaml").exists()


def test_samples_are_deterministic_by_seed(tmp_path):
    a = _digest(make_sample("shapes-detect", tmp_path / "a", seed=3))
    b = _digest(make_sample("shapes-detect", tmp_path / "b", seed=3))
    c = _digest(make_sample("shapes-detect", tmp_path / "c", seed=4))
    assert a == b != c


def test_same_arguments_reuse_and_new_arguments_regenerate(tmp_path):
    root = make_sample("shapes-detect", tmp_path / "d", n_train=4, n_val=2)
    stamp = (root / "images/train/train_0000.jpg").stat().st_mtime_ns
    make_sample("shapes-detect", root, n_train=4, n_val=2)
    assert (root / "images/train/train_0000.jpg").stat().st_mtime_ns == stamp
    make_sample("shapes-segment", root, n_train=2, n_val=1)
    assert len(list((root / "images/train").iterdir())) == 2
    assert validate(root, "segment").problems == []


def test_unknown_sample_lists_the_names(tmp_path):
    with pytest.raises(DatasetError) as e:
        make_sample("shapes-unknown", tmp_path / "x")
    assert all(n in str(e.value) for n in SAMPLES)


def test_refuses_a_folder_that_is_not_a_sample(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(DatasetError, match="not empty"):
        make_sample("shapes-detect", tmp_path / "mine")
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"


@pytest.mark.parametrize("name", ["shapes-detect", "shapes-pose", "shapes-obb", "shapes-segment"])
def test_ultralytics_accepts_prepared_sample(tmp_path, monkeypatch, name):
    """The data.yaml prepare_local writes is what the trainers hand to Ultralytics.

    The sample's own data.yaml says ``path: .``, which Ultralytics resolves against the current
    directory, so it is checked from inside the dataset folder as well."""
    monkeypatch.setenv("YOLO_OFFLINE", "1")
    from ultralytics.data.utils import check_det_dataset

    root = make_sample(name, tmp_path / "ds", n_train=4, n_val=2)
    info = prepare_local(root, SAMPLES[name], tmp_path / "work")
    data = check_det_dataset(str(info.data_yaml))
    view = tmp_path / "work" / "dataset"  # the trainers' view of the dataset (label caches go there)
    assert Path(data["train"]) == view / "images/train" and Path(data["val"]) == view / "images/val"
    assert data["nc"] == 3
    monkeypatch.chdir(root)
    assert Path(check_det_dataset(str(root / "data.yaml"))["val"]) == root / "images/val"


def test_ultralytics_accepts_classify_sample(tmp_path, monkeypatch):
    monkeypatch.setenv("YOLO_OFFLINE", "1")
    from ultralytics.data.utils import check_cls_dataset

    root = make_sample("shapes-classify", tmp_path / "cls")
    data = check_cls_dataset(str(root))
    assert data["nc"] == 3 and list(data["names"].values()) == list(CLASSES)
