from __future__ import annotations

import shutil

import pytest
import yaml

from core.errors import DatasetError
from tasks.samples import make_sample
from tasks.validation import Problem, ValidationReport, validate


@pytest.fixture
def detect(tmp_path):
    return make_sample("shapes-detect", tmp_path / "det", n_train=6, n_val=3)


@pytest.fixture
def classify(tmp_path):
    return make_sample("shapes-classify", tmp_path / "cls", n_train=6, n_val=3)


def _errors(report: ValidationReport) -> dict[str, str]:
    return {p.file: p.message for p in report.problems if p.severity == "error"}


def _warnings(report: ValidationReport) -> dict[str, str]:
    return {p.file: p.message for p in report.problems if p.severity == "warning"}


def test_corrupt_image_is_named(detect):
    (detect / "images/train/train_0002.jpg").write_bytes(b"this is not a jpeg at all" * 10)
    report = validate(detect, "detect")
    assert report.fatal
    assert "cannot be read" in _errors(report)["images/train/train_0002.jpg"]


def test_truncated_jpeg_is_a_warning(detect):
    img = detect / "images/train/train_0001.jpg"
    img.write_bytes(img.read_bytes()[:-200])
    report = validate(detect, "detect")
    assert "end marker" in _warnings(report)["images/train/train_0001.jpg"]


def test_class_id_out_of_range_names_file_and_line(detect):
    lbl = detect / "labels/val/val_0001.txt"
    lbl.write_text(lbl.read_text() + "7 0.5 0.5 0.1 0.1\n")
    line = len(lbl.read_text().splitlines())
    errors = _errors(validate(detect, "detect"))
    assert "class id 7 is out of range" in errors[f"labels/val/val_0001.txt:{line}"]
    assert "0..2" in errors[f"labels/val/val_0001.txt:{line}"]


@pytest.mark.parametrize(("row", "words"), [
    ("0 0.5 0.5 0.1", "4 values"),
    ("0 0.5 abc 0.1 0.1", "non-numeric"),
    ("1 0.5 0.5 1.4 0.1", "outside 0..1"),
    ("1 -0.2 0.5 0.1 0.1", "outside 0..1"),
    ("0.5 0.5 0.5 0.1 0.1", "out of range"),
])
def test_malformed_label_lines(detect, row, words):
    (detect / "labels/train/train_0003.txt").write_text(f"0 0.5 0.5 0.2 0.2\n{row}\n")
    errors = _errors(validate(detect, "detect"))
    assert list(errors) == ["labels/train/train_0003.txt:2"]
    assert words in errors["labels/train/train_0003.txt:2"]


def test_small_overshoot_is_tolerated(detect):
    (detect / "labels/train/train_0003.txt").write_text("0 0.5 0.5 1.005 0.2\n")
    assert not validate(detect, "detect").fatal


@pytest.mark.parametrize(("name", "task", "row", "words"), [
    ("shapes-segment", "segment", "0 0.1 0.1 0.2 0.2", "3 or more x y points"),
    ("shapes-obb", "obb", "0 0.5 0.5 0.1 0.1", "9 values"),
    ("shapes-pose", "pose", "0 0.5 0.5 0.1 0.1 0.5 0.5 2", "17 values"),
])
def test_wrong_column_count_per_task(tmp_path, name, task, row, words):
    root = make_sample(name, tmp_path / "ds", n_train=2, n_val=2)
    (root / "labels/val/val_0000.txt").write_text(row + "\n")
    assert words in _errors(validate(root, task))["labels/val/val_0000.txt:1"]


def test_pose_visibility_is_not_a_coordinate(tmp_path):
    root = make_sample("shapes-pose", tmp_path / "ds", n_train=2, n_val=2)
    assert " 2 " in (root / "labels/train/train_0000.txt").read_text()
    assert validate(root, "pose").problems == []


def test_detect_file_mixing_boxes_and_polygons(detect):
    (detect / "labels/train/train_0000.txt").write_text("0 0.5 0.5 0.2 0.2\n1 0.1 0.1 0.3 0.1 0.2 0.3\n")
    assert "mixes box rows" in _errors(validate(detect, "detect"))["labels/train/train_0000.txt"]


def test_empty_split(detect):
    for p in (detect / "images/val").iterdir():
        p.unlink()
    report = validate(detect, "detect")
    assert "val split has no images" in _errors(report)["images/val"]
    assert report.counts["val"] == 0


def test_missing_split_folder_and_key(detect):
    shutil.rmtree(detect / "images/val")
    assert "does not exist" in _errors(validate(detect, "detect"))["data.yaml"]
    data = yaml.safe_load((detect / "data.yaml").read_text())
    del data["val"]
    (detect / "data.yaml").write_text(yaml.safe_dump(data))
    assert "no `val:` entry" in _errors(validate(detect, "detect"))["data.yaml"]


def test_backgrounds_and_orphan_labels_are_warnings(detect):
    (detect / "labels/train/train_0001.txt").unlink()
    (detect / "labels/train/ghost.txt").write_text("0 0.5 0.5 0.1 0.1\n")
    report = validate(detect, "detect")
    assert not report.fatal
    warnings = _warnings(report)
    assert "background" in warnings["images/train/train_0001.jpg"]
    assert "without a matching image" in warnings["labels/train/ghost.txt"]


def test_many_backgrounds_become_one_warning(tmp_path):
    root = make_sample("shapes-detect", tmp_path / "ds", n_train=30, n_val=2)
    for label in sorted((root / "labels/train").glob("*.txt"))[1:]:
        label.unlink()
    report = validate(root, "detect")
    assert not report.fatal
    warnings = [p for p in report.problems if "have no label" in p.message]
    assert len(warnings) == 1 and "29 images have no label" in warnings[0].message
    assert report.stats["splits"]["train"]["background"] == 29 and report.stats["splits"]["train"]["labelled"] == 1


def test_a_split_without_any_label_is_refused_and_says_where_yolo_looked(tmp_path):
    root = make_sample("shapes-detect", tmp_path / "ds", n_train=6, n_val=2)
    shutil.rmtree(root / "labels/train")
    report = validate(root, "detect")
    error = next(p for p in report.errors if "train split" in p.message)
    assert "none of its 6 images has a labelled object" in error.message
    assert "labels/train/" in error.message and error.message_ko


def test_download_key_is_a_warning(detect):
    data = yaml.safe_load((detect / "data.yaml").read_text())
    data["download"] = "https://example.com/evil.zip"
    (detect / "data.yaml").write_text(yaml.safe_dump(data))
    assert "download" in _warnings(validate(detect, "detect"))["data.yaml"]


def test_broken_yaml_is_an_error_not_a_crash(detect):
    (detect / "data.yaml").write_text("train: [unclosed\n")
    assert "YAML" in _errors(validate(detect, "detect"))["data.yaml"]


def test_imagefolder_class_missing_in_val_is_a_warning(classify):
    shutil.rmtree(classify / "val/square")
    report = validate(classify, "classify")
    assert not report.fatal
    assert "none in val/" in _warnings(report)["val/square"]


def test_imagefolder_val_class_unknown_to_train_is_an_error(classify):
    shutil.copytree(classify / "val/square", classify / "val/hexagon")
    assert "not in train/" in _errors(validate(classify, "classify"))["val/hexagon"]


def test_imagefolder_corrupt_image_and_single_class(classify):
    shutil.rmtree(classify / "train/square")
    shutil.rmtree(classify / "train/triangle")
    (classify / "train/circle/train_0000.jpg").write_bytes(b"\x00" * 100)
    errors = _errors(validate(classify, "classify"))
    assert "cannot be read" in errors["train/circle/train_0000.jpg"]
    assert "at least 2 classes" in errors["train"]


def test_imagefolder_missing_and_empty_splits(classify):
    shutil.rmtree(classify / "val")
    (classify / "valid").mkdir()
    (classify / "valid/circle").mkdir()
    report = validate(classify, "classify")
    assert "no images" in _errors(report)["valid"]
    shutil.rmtree(classify / "valid")
    assert "missing val/ folder" in _errors(validate(classify, "classify"))["val"]


def test_task_format_mismatch_is_reported(detect, classify):
    assert "needs an ImageFolder" in _errors(validate(detect, "classify"))["det"]
    assert "needs a YOLO dataset" in _errors(validate(classify, "segment"))["cls"]


def test_report_summary_to_dict_and_raise(detect):
    for i in range(6):
        (detect / f"labels/train/train_{i:04d}.txt").write_text("".join("9 0.5 0.5 0.1 0.1\n" for _ in range(10)))
    report = validate(detect, "detect")
    assert len(report.errors) == 60
    text = report.summary()
    assert "60 error(s)" in text and "labels/train/train_0000.txt:1" in text
    # no valid object is left in train: every class is reported as one the model cannot learn
    assert "3 warning(s)" in text and "... and 13 more" in text
    assert report.stats["empty_classes"] == report.classes
    d = report.to_dict()
    assert d["fatal"] is True and d["format"] == "yolo" and d["counts"] == {"train": 6, "val": 3}
    assert d["problems"][0]["severity"] == "error"
    with pytest.raises(DatasetError) as e:
        report.raise_if_fatal()
    assert "fix the files named below" in str(e.value) and len(e.value.problems) == 63
    assert isinstance(e.value.problems[0], Problem)


def test_clean_report_does_not_raise(detect):
    report = validate(detect, "detect")
    report.raise_if_fatal()
    assert "0 error(s), 0 warning(s)" in report.summary()
