from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import pytest
import yaml
from PIL import Image

from core.errors import DatasetError
from tasks.dataset_formats import coco_to_yolo, detect_format, prepare_local
from tasks.samples import make_sample
from tasks.validation import validate

SIZE = 96
CAT_IDS = [7, 3, 11]  # sparse and out of order: classes follow sorted ids -> 3, 7, 11


def _coco_from_sample(tmp_path: Path, task: str = "detect") -> tuple[Path, Path]:
    """A COCO dataset built from a YOLO sample's labels, so the round trip can be compared."""
    sample = make_sample(f"shapes-{task}", tmp_path / "sample", n_train=4, n_val=2, image_size=SIZE)
    src = tmp_path / "coco"
    (src / "annotations").mkdir(parents=True)
    sorted_ids = sorted(CAT_IDS)
    for split in ("train", "val"):
        shutil.copytree(sample / "images" / split, src / "images" / split)
        images, anns = [], []
        for i, img in enumerate(sorted((sample / "images" / split).glob("*.jpg"))):
            images.append({"id": 100 + i, "file_name": img.name, "width": SIZE, "height": SIZE})
            for row in (sample / "labels" / split / f"{img.stem}.txt").read_text().split("\n"):
                if not row:
                    continue
                cls, *vals = row.split()
                xy = [float(v) * SIZE for v in vals]
                if task == "detect":
                    cx, cy, w, h = xy
                    bbox, seg = [cx - w / 2, cy - h / 2, w, h], []
                else:
                    xs, ys = xy[0::2], xy[1::2]
                    bbox = [min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)]
                    seg = [xy]
                anns.append({"id": len(anns) + 1, "image_id": 100 + i, "category_id": sorted_ids[int(cls)],
                             "bbox": bbox, "segmentation": seg, "iscrowd": 0, "area": bbox[2] * bbox[3]})
        cats = [{"id": c, "name": {3: "circle", 7: "square", 11: "triangle"}[c]} for c in CAT_IDS]
        doc = {"images": images, "annotations": anns, "categories": cats}
        (src / "annotations" / f"instances_{split}.json").write_text(json.dumps(doc))
    return sample, src


def _rows(p: Path) -> list[list[float]]:
    return [[float(v) for v in line.split()] for line in p.read_text().splitlines() if line.strip()]


# ----------------------------------------------------------------------------------- detect_format


def test_detect_format_recognises_each_layout(tmp_path):
    assert detect_format(make_sample("shapes-detect", tmp_path / "y")) == "yolo"
    assert detect_format(make_sample("shapes-classify", tmp_path / "i")) == "imagefolder"
    assert detect_format(_coco_from_sample(tmp_path)[1]) == "coco"


def test_detect_format_accepts_valid_as_val(tmp_path):
    root = make_sample("shapes-classify", tmp_path / "i")
    (root / "val").rename(root / "valid")
    assert detect_format(root) == "imagefolder"


def test_detect_format_explains_accepted_layouts(tmp_path):
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "readme.md").write_text("hi")
    with pytest.raises(DatasetError) as e:
        detect_format(tmp_path / "junk")
    msg = str(e.value)
    assert "readme.md" in msg and "data.yaml" in msg and "annotations/" in msg and "train/<class>" in msg
    with pytest.raises(DatasetError, match="does not exist"):
        detect_format(tmp_path / "missing")


# -------------------------------------------------------------------------------------- coco_to_yolo


@pytest.mark.parametrize("task", ["detect", "segment"])
def test_coco_to_yolo_round_trip(tmp_path, task):
    sample, src = _coco_from_sample(tmp_path, task)
    dest = coco_to_yolo(src, tmp_path / "yolo", task)
    data = yaml.safe_load((dest / "data.yaml").read_text())
    assert data["names"] == {0: "circle", 1: "square", 2: "triangle"}
    assert data["train"] == "images/train" and data["val"] == "images/val"
    for split in ("train", "val"):
        originals = sorted((sample / "labels" / split).glob("*.txt"))
        assert len(originals) == len(list((dest / "labels" / split).glob("*.txt")))
        for lbl in originals:
            got, want = _rows(dest / "labels" / split / lbl.name), _rows(lbl)
            assert len(got) == len(want)
            for g, w in zip(got, want, strict=True):
                assert g[0] == w[0] and g[1:] == pytest.approx(w[1:], abs=2e-6)
            assert (dest / "images" / split / f"{lbl.stem}.jpg").is_file()
    assert validate(dest, task).problems == []


def test_coco_to_yolo_lists_missing_images_and_bad_boxes(tmp_path):
    _, src = _coco_from_sample(tmp_path)
    (src / "images/train/train_0001.jpg").unlink()
    doc = json.loads((src / "annotations/instances_val.json").read_text())
    doc["annotations"][0]["bbox"] = [10, 10, -5, 4]
    doc["annotations"][1]["category_id"] = 99
    (src / "annotations/instances_val.json").write_text(json.dumps(doc))
    with pytest.raises(DatasetError) as e:
        coco_to_yolo(src, tmp_path / "out")
    msg = str(e.value)
    assert "train_0001.jpg" in msg and "bad bbox" in msg and "category_id 99" in msg
    assert len(e.value.problems) == 3
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("compressed", [True, False], ids=["compressed-rle", "uncompressed-rle"])
def test_coco_rle_masks_become_their_outline(tmp_path, caplog, compressed):
    import numpy as np
    from pycocotools import mask as mask_utils

    _, src = _coco_from_sample(tmp_path, "segment")
    doc = json.loads((src / "annotations/instances_train.json").read_text())
    first = doc["annotations"][0]
    image = next(im for im in doc["images"] if im["id"] == first["image_id"])
    h, w = image["height"], image["width"]
    mask = np.zeros((h, w), dtype=np.uint8, order="F")
    mask[10:30, 20:50] = 1  # rows 10..29, columns 20..49
    if compressed:
        rle = mask_utils.encode(mask)
        first["segmentation"] = {"size": [h, w], "counts": rle["counts"].decode()}
    else:  # COCO's uncompressed form: run lengths, column-major, starting with zeros
        flat = mask.flatten(order="F")
        runs, value, n = [], 0, 0
        for v in flat:
            if v == value:
                n += 1
            else:
                runs.append(n)
                value, n = v, 1
        runs.append(n)
        first["segmentation"] = {"size": [h, w], "counts": runs}
    doc["annotations"][1]["segmentation"] = {"size": [h + 1, w], "counts": [5, 5]}  # not the image's size
    (src / "annotations/instances_train.json").write_text(json.dumps(doc))
    notes: list[str] = []
    with caplog.at_level(logging.WARNING, logger="vtp"):
        dest = coco_to_yolo(src, tmp_path / "out", "segment", notes=notes)
    assert any("converted 1 RLE mask" in n for n in notes) and any("skipped 1 RLE" in n for n in notes)
    total = sum(len(_rows(p)) for p in (dest / "labels/train").glob("*.txt"))
    assert total == len(doc["annotations"]) - 1
    label = dest / "labels/train" / Path(image["file_name"]).with_suffix(".txt").name
    polys = [[float(v) for v in r[1:]] for r in _rows(label)]
    xs = [p[0::2] for p in polys]
    ys = [p[1::2] for p in polys]
    outline = next(i for i, (x, y) in enumerate(zip(xs, ys, strict=True))
                   if abs(min(x) * w - 20) < 1e-3 and abs(max(x) * w - 49) < 1e-3)
    assert min(ys[outline]) * h == pytest.approx(10, abs=1e-3) and max(ys[outline]) * h == pytest.approx(29, abs=1e-3)


def test_coco_to_yolo_needs_train_and_val(tmp_path):
    _, src = _coco_from_sample(tmp_path)
    (src / "annotations/instances_val.json").unlink()
    with pytest.raises(DatasetError, match="train and a val JSON"):
        coco_to_yolo(src, tmp_path / "out")


# ------------------------------------------------------------------------------------- prepare_local


def test_prepare_local_yolo_writes_absolute_data_yaml_without_download(tmp_path, caplog):
    root = make_sample("shapes-pose", tmp_path / "ds", n_train=3, n_val=2)
    data = yaml.safe_load((root / "data.yaml").read_text())
    data["download"] = "import os; os.system('touch /tmp/pwned')"
    (root / "data.yaml").write_text(yaml.safe_dump(data))
    with caplog.at_level(logging.WARNING, logger="vtp"):
        info = prepare_local(root, "pose", tmp_path / "work")
    assert "download" in caplog.text
    assert info.data_yaml == (tmp_path / "work" / "data.yaml").resolve()
    text = info.data_yaml.read_text()
    written = yaml.safe_load(text)
    assert "download" not in written and "# " in text  # the note is a comment
    # the trainers' view of the dataset in the work folder (label caches are written there, not in the dataset)
    assert written["path"] == str((tmp_path / "work" / "dataset").resolve()) and Path(written["path"]).is_absolute()
    assert written["train"] == "images/train" and written["val"] == "images/val"
    assert written["kpt_shape"] == [4, 3] and written["flip_idx"] == [0, 3, 2, 1]
    assert info.format == "yolo" and info.kpt_shape == [4, 3]
    assert info.classes == ["circle", "square", "triangle"] and info.splits == {"train": 3, "val": 2}


def test_prepare_local_reads_names_list_and_foreign_paths(tmp_path):
    """Ultralytics-style `path: ../datasets/x` from another machine falls back to the yaml's folder;
    Roboflow-style `../train/images` entries resolve inside the folder."""
    root = tmp_path / "rf"
    sample = make_sample("shapes-detect", tmp_path / "s", n_train=2, n_val=2)
    for split, name in (("train", "train"), ("val", "valid")):
        shutil.copytree(sample / "images" / split, root / name / "images")
        shutil.copytree(sample / "labels" / split, root / name / "labels")
    (root / "data.yaml").write_text(yaml.safe_dump(
        {"path": "../datasets/elsewhere", "train": "../train/images", "val": "../valid/images", "names": ["a", "b", "c"]}
    ))
    info = prepare_local(root, "detect", tmp_path / "work")
    written = yaml.safe_load(info.data_yaml.read_text())
    assert written["train"] == "train/images" and written["val"] == "valid/images"
    assert written["names"] == {0: "a", 1: "b", 2: "c"} and info.splits == {"train": 2, "val": 2}


def test_prepare_local_refuses_splits_outside_the_dataset(tmp_path):
    other = make_sample("shapes-detect", tmp_path / "other", n_train=1, n_val=1)
    root = make_sample("shapes-detect", tmp_path / "ds", n_train=1, n_val=1)
    (root / "data.yaml").write_text(yaml.safe_dump({"path": ".", "train": "images/train",
                                                    "val": str(other / "images/val"), "names": ["a"]}))
    with pytest.raises(DatasetError, match="outside the dataset folder"):
        prepare_local(root, "detect", tmp_path / "work")


@pytest.mark.parametrize(("sample", "task", "expected"), [
    ("shapes-detect", "classify", "ImageFolder"),
    ("shapes-classify", "detect", "data.yaml"),
])
def test_prepare_local_task_format_mismatch_says_what_is_expected(tmp_path, sample, task, expected):
    root = make_sample(sample, tmp_path / "ds", n_train=3, n_val=3)
    with pytest.raises(DatasetError) as e:
        prepare_local(root, task, tmp_path / "work")
    assert expected in str(e.value) and f"task {task!r}" in str(e.value)


def test_prepare_local_pose_needs_kpt_shape(tmp_path):
    root = make_sample("shapes-detect", tmp_path / "ds", n_train=1, n_val=1)
    with pytest.raises(DatasetError, match="kpt_shape"):
        prepare_local(root, "pose", tmp_path / "work")


def test_prepare_local_imagefolder_and_valid_view(tmp_path):
    root = make_sample("shapes-classify", tmp_path / "cls", n_train=6, n_val=3)
    info = prepare_local(root, "classify", tmp_path / "w1")
    # trainers read a view in the work folder (one link per image), never the dataset folder itself
    assert info.root == (tmp_path / "w1" / "dataset").resolve() and info.format == "imagefolder" and info.data_yaml is None
    assert (info.root / "train").is_dir() and not (info.root / "train").is_symlink()
    assert info.classes == ["circle", "square", "triangle"] and info.splits == {"train": 6, "val": 3}
    (root / "val").rename(root / "valid")
    info = prepare_local(root, "classify", tmp_path / "w2")
    first = next((info.root / "val" / "circle").glob("*.jpg"))
    assert first.resolve().parent == (root / "valid" / "circle").resolve() and (info.root / "train").is_dir()
    assert info.splits == {"train": 6, "val": 3}
    assert len(list((info.root / "val" / "circle").glob("*.jpg"))) == 1


def test_prepare_local_imagefolder_without_val(tmp_path):
    root = make_sample("shapes-classify", tmp_path / "cls", n_train=3, n_val=3)
    shutil.rmtree(root / "val")
    with pytest.raises(DatasetError, match="needs train/ and val/"):
        prepare_local(root, "classify", tmp_path / "w")


def test_prepare_local_converts_coco(tmp_path):
    _, src = _coco_from_sample(tmp_path)
    info = prepare_local(src, "detect", tmp_path / "work")
    assert info.format == "yolo" and info.root == (tmp_path / "work" / "dataset").resolve()
    assert (tmp_path / "work" / "yolo" / "data.yaml").is_file()  # converted there, then viewed
    assert info.classes == ["circle", "square", "triangle"] and info.splits == {"train": 4, "val": 2}
    with pytest.raises(DatasetError, match="needs"):
        prepare_local(src, "pose", tmp_path / "work2")


def test_prepare_local_rejects_unknown_task(tmp_path):
    with pytest.raises(DatasetError, match="unknown"):
        prepare_local(tmp_path, "depth", tmp_path / "w")


def test_image_sizes_read_from_file_when_json_has_none(tmp_path):
    _, src = _coco_from_sample(tmp_path)
    doc = json.loads((src / "annotations/instances_train.json").read_text())
    for im in doc["images"]:
        del im["width"], im["height"]
    (src / "annotations/instances_train.json").write_text(json.dumps(doc))
    dest = coco_to_yolo(src, tmp_path / "out")
    with Image.open(next((dest / "images/train").glob("*.jpg"))) as im:
        assert im.size == (SIZE, SIZE)
    assert validate(dest, "detect").problems == []


def test_prepare_local_refuses_symlinked_splits_out(tmp_path):
    """Datasets are closed worlds (issue 13): folders that link out of the dataset are refused, with
    the same message as any other path outside it."""
    cache = make_sample("shapes-detect", tmp_path / "cache", n_train=2, n_val=2)
    root = tmp_path / "linked"
    root.mkdir()
    for name in ("images", "labels"):
        (root / name).symlink_to(cache / name)
    shutil.copy(cache / "data.yaml", root / "data.yaml")
    with pytest.raises(DatasetError, match="leads outside the dataset folder"):
        prepare_local(root, "detect", tmp_path / "work")
    assert any("leads outside the dataset folder" in p.message for p in validate(root, "detect").errors)