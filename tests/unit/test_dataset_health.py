"""The health report of tasks.validation: per-split stats, leakage, duplicates, empty classes,
unlabelled splits, and describe()."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml
from PIL import Image

from tasks.samples import make_sample
from tasks.validation import describe, validate


def _img(path: Path, colour: tuple[int, int, int], size: tuple[int, int] = (32, 32)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path)


def _yolo(root: Path, splits: dict[str, list[tuple[str, str | None, tuple[int, int]]]], names: list[str],
          images: str = "images") -> Path:
    """``splits``: split -> [(stem, label text or None for no label file, (w, h))]; each image a distinct colour."""
    n = 0
    for split, items in splits.items():
        for stem, label, size in items:
            n += 1
            _img(root / images / split / f"{stem}.png", (n * 17 % 256, n * 29 % 256, n * 53 % 256), size)
            if label is not None:
                lbl = root / "labels" / split / f"{stem}.txt"
                lbl.parent.mkdir(parents=True, exist_ok=True)
                lbl.write_text(label)
    data = {"path": ".", **{s: f"{images}/{s}" for s in splits}, "names": dict(enumerate(names))}
    (root / "data.yaml").write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return root


BOX = "{} 0.5 0.5 0.2 0.2\n"


def _basic(tmp_path: Path, names: list[str] | None = None) -> Path:
    return _yolo(tmp_path / "ds", {
        "train": [("t0", BOX.format(0) + BOX.format(1), (40, 30)),
                  ("t1", BOX.format(0), (60, 20)),
                  ("t2", BOX.format(1) + BOX.format(1) + BOX.format(0), (20, 50)),
                  ("t3", "", (30, 30)),  # background: an empty label file
                  ("t4", None, (100, 10))],  # background: no label file
        "val": [("v0", BOX.format(0), (32, 32)), ("v1", BOX.format(1), (32, 32))],
    }, names or ["cat", "dog"])


def _warnings(report) -> list:
    return [p for p in report.problems if p.severity == "warning"]


def _errors(report) -> list:
    return [p for p in report.problems if p.severity == "error"]


# --------------------------------------------------------------------------------------------- stats


def test_yolo_split_stats(tmp_path):
    report = validate(_basic(tmp_path), "detect")
    assert not report.fatal, report.summary()
    train = report.stats["splits"]["train"]
    assert train["images"] == 5
    assert train["labelled"] == 3
    assert train["background"] == 2
    assert train["unreadable"] == 0
    assert train["duplicates"] == 0
    assert train["instances"] == {"cat": 3, "dog": 3}
    assert report.stats["splits"]["val"]["instances"] == {"cat": 1, "dog": 1}
    assert report.stats["splits"]["val"]["background"] == 0
    assert report.stats["leakage"] == {"count": 0, "examples": []}
    assert report.stats["empty_classes"] == []


def test_image_size_min_median_max(tmp_path):
    train = validate(_basic(tmp_path), "detect").stats["splits"]["train"]
    # widths 40 60 20 30 100, heights 30 20 50 30 10: each sorted on its own
    assert train["image_size"] == {"min": [20, 10], "median": [40, 30], "max": [100, 50]}
    val = validate(_basic(tmp_path), "detect").stats["splits"]["val"]
    assert val["image_size"] == {"min": [32, 32], "median": [32, 32], "max": [32, 32]}


def test_imagefolder_instances_are_images_per_class(tmp_path):
    root = make_sample("shapes-classify", tmp_path / "cls", n_train=7, n_val=4, image_size=48)
    report = validate(root, "classify")
    assert not report.fatal, report.summary()
    train, val = report.stats["splits"]["train"], report.stats["splits"]["val"]
    assert train["instances"] == {"circle": 3, "square": 2, "triangle": 2}
    assert val["instances"] == {"circle": 2, "square": 1, "triangle": 1}
    assert train["images"] == train["labelled"] == 7
    assert train["background"] == 0
    assert train["image_size"] == {"min": [48, 48], "median": [48, 48], "max": [48, 48]}


def test_sample_detect_counts_match_labels(tmp_path):
    root = make_sample("shapes-detect", tmp_path / "det", n_train=6, n_val=3, image_size=64)
    report = validate(root, "detect")
    names = report.classes
    for split in ("train", "val"):
        expected = dict.fromkeys(names, 0)
        for lbl in (root / "labels" / split).glob("*.txt"):
            for line in lbl.read_text().splitlines():
                if line.split():
                    expected[names[int(line.split()[0])]] += 1
        assert report.stats["splits"][split]["instances"] == expected


# ---------------------------------------------------------------------------------- leakage, duplicates


def test_leakage_same_bytes_in_train_and_val(tmp_path):
    root = _basic(tmp_path)
    shutil.copy(root / "images/train/t0.png", root / "images/val/leak0.png")
    shutil.copy(root / "labels/train/t0.txt", root / "labels/val/leak0.txt")
    shutil.copy(root / "images/train/t1.png", root / "images/val/leak1.png")
    shutil.copy(root / "labels/train/t1.txt", root / "labels/val/leak1.txt")
    report = validate(root, "detect")
    assert not report.fatal  # a warning, not an error
    leak = report.stats["leakage"]
    assert leak["count"] == 2
    assert sorted(map(tuple, leak["examples"])) == [("images/train/t0.png", "images/val/leak0.png"),
                                                    ("images/train/t1.png", "images/val/leak1.png")]
    msgs = [p for p in _warnings(report) if "also in train" in p.message]
    assert len(msgs) == 1
    assert "2 val/test image(s)" in msgs[0].message
    assert "images/train/t0.png" in msgs[0].message or "images/train/t1.png" in msgs[0].message
    assert msgs[0].message_ko and "2개" in msgs[0].message_ko


def test_leakage_with_test_split(tmp_path):
    root = _basic(tmp_path)
    data = yaml.safe_load((root / "data.yaml").read_text())
    shutil.copy(root / "images/train/t2.png", root / "images/val/copy.png")
    data["test"] = data.pop("val")  # test used as val
    (root / "data.yaml").write_text(yaml.safe_dump(data))
    report = validate(root, "detect")
    assert report.stats["leakage"]["count"] == 1


def test_no_leakage_for_different_bytes(tmp_path):
    root = _basic(tmp_path)
    _img(root / "images/val/other.png", (1, 2, 3), (40, 30))  # same size as t0, other pixels
    assert validate(root, "detect").stats["leakage"]["count"] == 0


def test_duplicates_within_a_split(tmp_path):
    root = _basic(tmp_path)
    for i in range(2):
        shutil.copy(root / "images/train/t0.png", root / f"images/train/dup{i}.png")
        shutil.copy(root / "labels/train/t0.txt", root / f"labels/train/dup{i}.txt")
    report = validate(root, "detect")
    assert report.stats["splits"]["train"]["duplicates"] == 2
    assert report.stats["splits"]["val"]["duplicates"] == 0
    assert report.stats["leakage"]["count"] == 0
    dup = [p for p in _warnings(report) if "byte for byte" in p.message]
    assert len(dup) == 1
    assert dup[0].message.startswith("2 image(s) in train")
    assert "images/train/t0.png" in dup[0].message or "images/train/dup0.png" in dup[0].message


def test_duplicates_in_imagefolder(tmp_path):
    root = make_sample("shapes-classify", tmp_path / "cls", n_train=6, n_val=3, image_size=48)
    src = next((root / "train" / "circle").glob("*.jpg"))
    shutil.copy(src, root / "train" / "square" / "copy.jpg")  # the same image under two classes
    report = validate(root, "classify")
    assert report.stats["splits"]["train"]["duplicates"] == 1


# ------------------------------------------------------------------------------------ empty classes


def test_zero_instance_class_warning(tmp_path):
    root = _basic(tmp_path, ["cat", "dog", "unicorn"])
    report = validate(root, "detect")
    assert not report.fatal
    assert report.stats["empty_classes"] == ["unicorn"]
    assert report.stats["splits"]["train"]["instances"]["unicorn"] == 0
    warn = [p for p in _warnings(report) if "unicorn" in p.message]
    assert len(warn) == 1
    assert "no instance in train" in warn[0].message
    assert warn[0].file == "data.yaml"
    assert warn[0].message_ko


def test_zero_instance_class_only_in_val_still_warns(tmp_path):
    root = _basic(tmp_path, ["cat", "dog", "owl"])
    (root / "labels/val/v0.txt").write_text(BOX.format(2))
    report = validate(root, "detect")
    assert report.stats["empty_classes"] == ["owl"]
    assert report.stats["splits"]["val"]["instances"]["owl"] == 1


def test_imagefolder_class_without_train_images(tmp_path):
    root = make_sample("shapes-classify", tmp_path / "cls", n_train=6, n_val=3, image_size=48)
    (root / "train" / "empty").mkdir()
    report = validate(root, "classify")
    assert "empty" not in report.classes
    assert report.stats["empty_classes"] == []


# --------------------------------------------------------------------------------------- unreadable


def test_unreadable_image_is_counted_and_an_error(tmp_path):
    root = _basic(tmp_path)
    (root / "images/train/t1.png").write_bytes(b"not a png" * 20)
    report = validate(root, "detect")
    assert report.fatal
    train = report.stats["splits"]["train"]
    assert train["unreadable"] == 1
    assert train["images"] == 5
    assert train["background"] == 5 - 1 - train["labelled"]
    assert len(train["image_size"]) == 3  # sizes of the readable ones only
    err = [p for p in _errors(report) if p.file == "images/train/t1.png"]
    assert err and "cannot be read" in err[0].message and err[0].message_ko


def test_unreadable_in_imagefolder(tmp_path):
    root = make_sample("shapes-classify", tmp_path / "cls", n_train=6, n_val=3, image_size=48)
    bad = next((root / "val" / "circle").glob("*.jpg"))
    bad.write_bytes(b"\x00" * 100)
    report = validate(root, "classify")
    assert report.stats["splits"]["val"]["unreadable"] == 1
    assert report.stats["splits"]["val"]["instances"]["circle"] == 0
    assert report.fatal


# ------------------------------------------------------------------------------- splits without labels


def test_split_without_any_label_file_is_an_error(tmp_path):
    root = _basic(tmp_path)
    shutil.rmtree(root / "labels" / "val")
    report = validate(root, "detect")
    assert report.fatal
    err = [p for p in _errors(report) if "none of its" in p.message]
    assert len(err) == 1
    e = err[0]
    assert e.file == "images/val"
    assert e.message.startswith("val split: none of its 2 images has a labelled object")
    assert "/images/ with /labels/" in e.message
    assert "images/val/v0.png needs labels/val/v0.txt" in e.message
    assert e.message_ko and "labels/val/v0.txt" in e.message_ko
    assert "capital" not in e.message
    assert report.stats["splits"]["val"]["labelled"] == 0
    assert report.stats["splits"]["val"]["background"] == 2


def test_split_with_labels_elsewhere_says_where(tmp_path):
    root = _basic(tmp_path)
    (root / "labels" / "val").rename(root / "annotations")
    report = validate(root, "detect")
    e = next(p for p in _errors(report) if "none of its" in p.message)
    assert "annotations/ holds 2 label files with the same names" in e.message
    assert "annotations/" in e.message_ko


def test_split_with_only_empty_label_files_is_an_error(tmp_path):
    root = _basic(tmp_path)
    for lbl in (root / "labels" / "val").glob("*.txt"):
        lbl.write_text("")
    report = validate(root, "detect")
    assert any("none of its 2 images" in p.message for p in _errors(report))


def test_capital_images_folder_hint(tmp_path):
    root = _yolo(tmp_path / "ds", {
        "train": [("a", BOX.format(0), (32, 32)), ("b", BOX.format(1), (32, 32))],
        "val": [("c", BOX.format(0), (32, 32))],
    }, ["x", "y"], images="Images")
    report = validate(root, "detect")
    assert report.fatal
    errs = {p.file: p for p in _errors(report) if "none of its" in p.message}
    assert set(errs) == {"Images/train", "Images/val"}
    e = errs["Images/train"]
    assert "capital" in e.message
    assert "rename Images/ to images/" in e.message
    assert "lower-case" in e.message
    assert "labels/train/ holds 2 label files" in e.message
    assert e.message_ko and "images/" in e.message_ko and "대문자" in e.message_ko


def test_partly_labelled_split_is_only_a_warning(tmp_path):
    root = _basic(tmp_path)
    (root / "labels/val/v1.txt").unlink()
    report = validate(root, "detect")
    assert not report.fatal
    assert any(p.file == "images/val/v1.png" and "no label file" in p.message for p in _warnings(report))


# ------------------------------------------------------------------------------------------ describe


def test_describe_has_the_table_and_the_warnings(tmp_path):
    root = _basic(tmp_path, ["cat", "dog", "unicorn"])
    shutil.copy(root / "images/train/t0.png", root / "images/val/leak.png")
    report = validate(root, "detect")
    stored = {**report.to_dict(), "notes": ["no validation split: made one"], "dropped": [
        {"file": "x.cache", "reason": "a pickle"}], "dropped_count": 1}
    text = describe(stored)
    lines = text.splitlines()
    header = next(ln for ln in lines if "images" in ln and "labelled" in ln)
    assert all(w in header for w in ("split", "background", "unreadable", "dups", "instances per class"))
    train_row = next(ln for ln in lines if ln.split()[:1] == ["train"])
    assert train_row.split()[:6] == ["train", "5", "3", "2", "0", "0"]
    assert "cat 3, dog 3, unicorn 0" in train_row
    assert next(ln for ln in lines if ln.split()[:1] == ["val"]).split()[:2] == ["val", "3"]
    assert "train image size (w x h px): median 40x30, min 20x10, max 100x50" in text
    assert "leakage: 1 val/test image(s) are also in train" in text
    assert "note: no validation split: made one" in text
    assert "left out 1 file(s)" in text and "x.cache: a pickle" in text
    assert "warning: data.yaml: class 'unicorn' has no instance in train" in text
    assert "warning: images/val/leak.png:" in text


def test_describe_errors_first_and_limit(tmp_path):
    root = _basic(tmp_path)
    (root / "images/train/t1.png").write_bytes(b"junk" * 10)
    report = validate(root, "detect").to_dict()
    problems = [ln for ln in describe(report).splitlines() if ln.strip().startswith(("error:", "warning:"))]
    assert problems[0].strip().startswith("error:")
    many = {**report, "problems": [{"severity": "warning", "file": f"f{i}", "message": "m"} for i in range(40)]}
    text = describe(many, limit=5)
    assert text.count("warning: f") == 5
    assert "... and 35 more" in text


def test_describe_of_an_empty_report():
    assert describe({}) == ""
    assert describe({"stats": {"splits": {}}, "problems": []}) == ""


def test_stats_are_json_serialisable(tmp_path):
    import json

    report = validate(_basic(tmp_path), "detect")
    again = json.loads(json.dumps(report.to_dict()))
    assert again["stats"]["splits"]["train"]["instances"] == {"cat": 3, "dog": 3}
    assert describe(again)


@pytest.mark.parametrize("task", ["detect", "segment"])
def test_korean_class_names_in_stats(tmp_path, task):
    box = "{} 0.4 0.4 0.6 0.4 0.6 0.6 0.4 0.6\n" if task == "segment" else BOX
    root = _yolo(tmp_path / "ds", {"train": [("a", box.format(0), (32, 32)), ("b", box.format(1), (32, 32))],
                                   "val": [("c", box.format(1), (32, 32))]}, ["고양이", "강아지"])
    report = validate(root, task)
    assert not report.fatal, report.summary()
    assert report.stats["splits"]["train"]["instances"] == {"고양이": 1, "강아지": 1}
    assert "고양이 1, 강아지 1" in describe(report.to_dict())
