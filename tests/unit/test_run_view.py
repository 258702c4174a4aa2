"""What a run's view of its dataset changes, and says it changed (TrainSpec.classes, val_fraction,
8-bit copies of 16-bit images for ultralytics): prepare_local, splits.resplit and the
validate-dataset step, on small generated datasets."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from core.errors import DatasetError
from core.spec import parse_spec
from tasks import splits
from tasks.dataset_formats import prepare_local
from tasks.train_steps import validate_dataset

NAMES = ["person", "car", "dog"]


def yolo_dataset(root: Path, rows: dict[str, dict[str, list[str]]], names: list[str] = NAMES,
                 pixels: np.ndarray | None = None) -> Path:
    """``rows``: split -> image stem -> label rows. Images are 32x32 8-bit RGB, or ``pixels`` (a 2-D
    uint16 array saved as a 16-bit PNG)."""
    for split, images in rows.items():
        for stem, lines in images.items():
            (root / "images" / split).mkdir(parents=True, exist_ok=True)
            (root / "labels" / split).mkdir(parents=True, exist_ok=True)
            if pixels is None:
                Image.new("RGB", (32, 32), (hash(stem) % 255, 10, 10)).save(root / "images" / split / f"{stem}.png")
            else:
                Image.fromarray(pixels).save(root / "images" / split / f"{stem}.png")
            (root / "labels" / split / f"{stem}.txt").write_text("".join(f"{r}\n" for r in lines))
    data = {"path": ".", "names": dict(enumerate(names)), **{s: f"images/{s}" for s in rows}}
    (root / "data.yaml").write_text(yaml.safe_dump(data))
    return root


def test_classes_keep_only_their_objects_renumbered(tmp_path):
    root = yolo_dataset(tmp_path / "ds", {
        "train": {"a": ["0 0.5 0.5 0.2 0.2", "1 0.3 0.3 0.1 0.1", "2 0.6 0.6 0.1 0.1"], "b": ["1 0.5 0.5 0.4 0.4"]},
        "val": {"c": ["2 0.5 0.5 0.2 0.2", "0 0.1 0.1 0.1 0.1"]},
    })
    notes: list[str] = []
    info = prepare_local(root, "detect", tmp_path / "work", classes=["dog", "person"], notes=notes)
    assert info.classes == ["dog", "person"]
    view = Path(info.root)
    assert (view / "labels/train/a.txt").read_text().split("\n")[:2] == ["1 0.5 0.5 0.2 0.2", "0 0.6 0.6 0.1 0.1"]
    assert (view / "labels/train/b.txt").read_text() == ""  # only a car: a background image now
    assert (view / "images/train/b.png").exists() and info.splits == {"train": 2, "val": 1}
    assert yaml.safe_load(Path(info.data_yaml).read_text())["names"] == {0: "dog", 1: "person"}
    assert notes == ["classes: training on 2 of the dataset's 3 classes (dog, person); 2 objects of other classes "
                     "left out of the labels (4 kept), their images kept as background"]
    assert not (root / "labels/train/a.txt").read_text().startswith("1 ")  # the dataset itself is untouched


def test_a_class_the_dataset_lacks_is_refused_with_its_classes(tmp_path):
    root = yolo_dataset(tmp_path / "ds", {"train": {"a": ["0 0.5 0.5 0.2 0.2"]}, "val": {"b": ["1 0.5 0.5 0.2 0.2"]}})
    with pytest.raises(DatasetError, match=r"classes: 'persons' is not a class of dataset ds; its classes are "
                                           r"person, car, dog\..*person"):
        prepare_local(root, "detect", tmp_path / "work", classes=["persons"])


def test_classes_of_an_image_folder(tmp_path):
    for split in ("train", "val"):
        for c in ("cat", "dog", "bird"):
            (tmp_path / "ds" / split / c).mkdir(parents=True)
            Image.new("RGB", (8, 8)).save(tmp_path / "ds" / split / c / f"{c}.png")
    notes: list[str] = []
    info = prepare_local(tmp_path / "ds", "classify", tmp_path / "work", classes=["dog", "cat"], notes=notes)
    assert info.classes == ["dog", "cat"] and info.splits == {"train": 2, "val": 2}
    assert sorted(p.name for p in (Path(info.root) / "train").iterdir()) == ["cat", "dog"]
    assert "the other class folders are left out" in notes[0]
    with pytest.raises(DatasetError, match="'fish' is not a class"):
        prepare_local(tmp_path / "ds", "classify", tmp_path / "work2", classes=["fish"])


def test_sixteen_bit_images_become_scaled_eight_bit_copies_for_ultralytics(tmp_path):
    ramp = (np.arange(32 * 32, dtype=np.uint16).reshape(32, 32) * 4)  # 0..4092: 12-bit data in 16-bit PNGs
    root = yolo_dataset(tmp_path / "ds", {"train": {"a": ["0 0.5 0.5 0.2 0.2"]}, "val": {"b": ["0 0.5 0.5 0.2 0.2"]}},
                        pixels=ramp)
    notes: list[str] = []
    info = prepare_local(root, "detect", tmp_path / "work", eight_bit=True, notes=notes)
    copy = Path(info.root) / "images/train/a.png"
    assert not copy.is_symlink()
    with Image.open(copy) as im:
        assert im.mode == "RGB"
        got = np.asarray(im)[..., 0]
    assert np.array_equal(got, np.rint(ramp * 255.0 / 4095).astype(np.uint8))  # not the high byte (0..15)
    assert (Path(info.root) / "labels/train/a.txt").is_symlink()
    assert notes == ["16-bit images scaled from 12-bit range (0-4095 -> 0-255) for training (the same scale for "
                     "every image)"]
    # other trainers scale when they load: their view links the originals
    plain = prepare_local(root, "detect", tmp_path / "work2")
    assert (Path(plain.root) / "images/train/a.png").is_symlink()


def test_eight_bit_datasets_are_linked_as_they_are(tmp_path):
    root = yolo_dataset(tmp_path / "ds", {"train": {"a": ["0 0.5 0.5 0.2 0.2"]}, "val": {"b": ["0 0.5 0.5 0.2 0.2"]}})
    notes: list[str] = []
    info = prepare_local(root, "detect", tmp_path / "work", eight_bit=True, notes=notes)
    assert (Path(info.root) / "images/train/a.png").is_symlink() and notes == []


def _no_val_dataset(root: Path, n: int = 20) -> Path:
    return yolo_dataset(root, {"train": {f"im{i:02d}": [f"{i % 2} 0.5 0.5 0.2 0.2"] for i in range(n)}})


def test_resplit_makes_the_val_split_again_with_another_share(tmp_path):
    imported, first = splits.auto_split(_no_val_dataset(tmp_path / "raw"), "yolo", tmp_path / "imported", 0.2)
    assert (first["train"], first["val"]) == (16, 4)
    again, second = splits.resplit(imported, "yolo", tmp_path / "again", 0.5)
    assert (second["train"], second["val"], second["val_fraction"]) == (10, 10, 0.5)
    assert len(list((again / "images/val").iterdir())) == 10
    # every image once, each with its label
    stems = sorted(p.name.split("__")[-1] for p in (again / "images").rglob("*.png"))
    assert stems == sorted(f"im{i:02d}.png" for i in range(20))
    assert all((again / "labels" / p.parent.name / (p.stem + ".txt")).is_file() for p in (again / "images").rglob("*.png"))


def test_validate_step_resplits_only_a_split_vtp_made(tmp_path):
    imported, made = splits.auto_split(_no_val_dataset(tmp_path / "raw"), "yolo", tmp_path / "imported", 0.2)
    spec = parse_spec({"model": "yolo11n", "dataset": "d", "val_fraction": 0.4})
    info, report = validate_dataset.fn(imported, spec, tmp_path / "work", made)
    assert info.splits == {"train": 12, "val": 8}
    assert report["run_notes"][0].startswith("val_fraction=0.4: the val split vtp made at import (val_fraction 0.2) "
                                             "was made again: 8 of 20 images in val")
    own = yolo_dataset(tmp_path / "own", {"train": {"a": ["0 0.5 0.5 0.2 0.2"], "b": ["1 0.5 0.5 0.2 0.2"]},
                                          "val": {"c": ["0 0.5 0.5 0.2 0.2"]}})
    info, report = validate_dataset.fn(own, spec, tmp_path / "work2", None)
    assert info.splits == {"train": 2, "val": 1}
    assert report["run_notes"] == ["val_fraction=0.4 was not used: dataset d has its own validation split, which is kept"]


def test_validate_step_splits_a_uri_dataset_with_the_specs_share(tmp_path):
    spec = parse_spec({"model": "yolo11n", "dataset": "file:///x", "val_fraction": 0.3})
    info, report = validate_dataset.fn(_no_val_dataset(tmp_path / "raw"), spec, tmp_path / "work", None)
    assert info.splits == {"train": 14, "val": 6}
    assert "val_fraction 0.3," in report["run_notes"][0]
