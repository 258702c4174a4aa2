"""COCO layouts: choosing the annotation file per split (official 2017 download, Roboflow), parent
categories, pose conversion, and the tests/cases generators through ingest."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from PIL import Image

from core.errors import DatasetError
from core.settings import Settings
from tasks.dataset_formats import coco_jsons, coco_kind, coco_task, coco_to_yolo, select_coco_files
from tasks.dataset_ingest import ingest
from tasks.storage import Storage
from tasks.validation import validate

CASES = Path(__file__).resolve().parents[1] / "cases"
W, H = 64, 48
CATS = [{"supercategory": "person", "id": 1, "name": "person"},
        {"supercategory": "vehicle", "id": 2, "name": "bicycle"},
        {"supercategory": "vehicle", "id": 3, "name": "car"}]
KP_NAMES = ["nose", "left_eye", "right_eye", "left_ear", "right_ear"]
KP_CAT = [{"supercategory": "person", "id": 1, "name": "person", "keypoints": KP_NAMES, "skeleton": [[1, 2]]}]


def _write(path: Path, data: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    return path


def _images(folder: Path, ids: list[int]) -> list[dict]:
    out = []
    for iid in ids:
        name = f"{iid:012d}.jpg"
        folder.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (W, H), (iid % 256, 80, 120)).save(folder / name)
        out.append({"id": iid, "file_name": name, "width": W, "height": H})
    return out


def _official(root: Path) -> Path:
    """annotations/{instances,person_keypoints,captions}_{train,val}2017.json, train2017/, val2017/."""
    for split, ids in (("train", [1, 2, 3]), ("val", [11, 12])):
        images = _images(root / f"{split}2017", ids)
        inst, kps = [], []
        for im in images:
            for c in (1, 2, 3):
                inst.append({"id": len(inst) + 1, "image_id": im["id"], "category_id": c, "bbox": [8, 8, 16, 16],
                             "area": 256, "iscrowd": 0, "segmentation": [[8, 8, 24, 8, 24, 24, 8, 24]]})
            kps.append({"id": len(kps) + 1, "image_id": im["id"], "category_id": 1, "bbox": [8, 8, 32, 24],
                        "iscrowd": 0, "num_keypoints": 3,
                        "keypoints": [16, 12, 2, 20, 12, 2, 12, 12, 1, 0, 0, 0, 32, 24, 2]})
        base = {"info": {"year": 2017}, "licenses": [], "images": images}
        _write(root / "annotations" / f"instances_{split}2017.json", {**base, "annotations": inst, "categories": CATS})
        _write(root / "annotations" / f"person_keypoints_{split}2017.json",
               {**base, "annotations": kps, "categories": KP_CAT})
        _write(root / "annotations" / f"captions_{split}2017.json",
               {**base, "annotations": [{"id": 1, "image_id": images[0]["id"], "caption": "a picture"}]})
    return root


@pytest.fixture
def official(tmp_path):
    return _official(tmp_path / "coco")


def _labels(folder: Path) -> dict[str, list[list[str]]]:
    return {p.stem: [ln.split() for ln in p.read_text().splitlines() if ln.strip()] for p in sorted(folder.glob("*.txt"))}


# ---------------------------------------------------------------------------------- select_coco_files


def test_captions_are_not_annotation_files(official):
    names = [p.name for p in coco_jsons(official)]
    assert not any(n.startswith("captions_") for n in names)
    assert sorted(names) == ["instances_train2017.json", "instances_val2017.json",
                             "person_keypoints_train2017.json", "person_keypoints_val2017.json"]


@pytest.mark.parametrize("task", ["detect", "segment"])
def test_official_layout_instances_for_detect_and_segment(official, task):
    chosen = select_coco_files(official, task)
    assert list(chosen) == ["train", "val"]
    assert chosen["train"] == official / "annotations" / "instances_train2017.json"
    assert chosen["val"] == official / "annotations" / "instances_val2017.json"


def test_official_layout_keypoints_for_pose(official):
    chosen = select_coco_files(official, "pose")
    assert chosen == {"train": official / "annotations" / "person_keypoints_train2017.json",
                      "val": official / "annotations" / "person_keypoints_val2017.json"}


def test_coco_kind():
    assert coco_kind({"categories": KP_CAT}) == "keypoints"
    assert coco_kind({"categories": CATS}) == "instances"
    assert coco_kind({"categories": []}) == "instances"
    assert coco_kind({}) == "instances"


def test_coco_task(official, tmp_path):
    assert coco_task(official) == "detect"  # instances and keypoints files: detect unless asked
    for p in (official / "annotations").glob("instances_*.json"):
        p.unlink()
    assert coco_task(official) == "pose"  # only keypoint files


def test_two_instances_files_for_one_split_names_both(official):
    data = json.loads((official / "annotations" / "instances_train2017.json").read_text())
    _write(official / "annotations" / "instances_train.json", data)
    with pytest.raises(DatasetError) as e:
        select_coco_files(official, "detect")
    msg = str(e.value)
    assert "2 COCO files for the train split" in msg
    assert "annotations/instances_train.json" in msg and "annotations/instances_train2017.json" in msg
    assert "no rule to choose" in msg
    # pose still has exactly one keypoint file per split
    assert select_coco_files(official, "pose")["train"].name == "person_keypoints_train2017.json"


def test_pose_without_keypoint_files_is_refused(official):
    for p in (official / "annotations").glob("person_keypoints_*.json"):
        p.unlink()
    with pytest.raises(DatasetError, match="pose needs COCO keypoint annotations"):
        select_coco_files(official, "pose")


def test_missing_val_is_refused(official):
    for p in (official / "annotations").glob("*_val2017.json"):
        p.unlink()
    with pytest.raises(DatasetError, match="needs a train and a val"):
        select_coco_files(official, "detect")


def test_roboflow_layout_files(tmp_path):
    root = tmp_path / "rf"
    for split in ("train", "valid", "test"):
        images = _images(root / split, [1])
        _write(root / split / "_annotations.coco.json", {"images": images, "annotations": [], "categories": CATS})
    chosen = select_coco_files(root, "detect")
    assert chosen == {s: root / d / "_annotations.coco.json" for s, d in
                      (("train", "train"), ("val", "valid"), ("test", "test"))}


# -------------------------------------------------------------------------------------- coco_to_yolo


def test_official_layout_converts_with_images_from_split_folders(official, tmp_path):
    notes: list[str] = []
    dest = coco_to_yolo(official, tmp_path / "yolo", "detect", notes=notes)
    data = yaml.safe_load((dest / "data.yaml").read_text())
    assert data["names"] == {0: "person", 1: "bicycle", 2: "car"}
    assert data["train"] == "images/train" and data["val"] == "images/val"
    assert sorted(p.name for p in (dest / "images/train").iterdir()) == [f"{i:012d}.jpg" for i in (1, 2, 3)]
    assert sorted(p.name for p in (dest / "images/val").iterdir()) == [f"{i:012d}.jpg" for i in (11, 12)]
    labels = _labels(dest / "labels/val")
    assert all(sorted(r[0] for r in rows) == ["0", "1", "2"] for rows in labels.values())
    row = labels["000000000011"][0]
    assert [float(v) for v in row[1:]] == pytest.approx([16 / W, 16 / H, 16 / W, 16 / H])
    assert any("instances_train2017.json" in n and "instances_val2017.json" in n for n in notes)
    assert not any("parent" in n for n in notes)  # 'vehicle' is a supercategory but no category
    assert not validate(dest, "detect").fatal


def test_pose_conversion(official, tmp_path):
    dest = coco_to_yolo(official, tmp_path / "yolo", "pose")
    data = yaml.safe_load((dest / "data.yaml").read_text())
    assert data["names"] == {0: "person"}
    assert data["kpt_shape"] == [5, 3]
    assert data["flip_idx"] == [0, 2, 1, 4, 3]
    assert data["kpt_names"] == {0: KP_NAMES}
    rows = _labels(dest / "labels/train")["000000000001"]
    assert len(rows) == 1
    row = rows[0]
    assert len(row) == 5 + 5 * 3
    assert row[0] == "0"
    # box [8, 8, 32, 24] on 64x48: centre (24, 20), size (32, 24)
    assert row[1:5] == ["0.375000", "0.416667", "0.500000", "0.500000"]
    # keypoints [16,12,2, 20,12,2, 12,12,1, 0,0,0, 32,24,2]: x / 64, y / 48, visibility as given
    assert row[5:] == ["0.250000", "0.250000", "2", "0.312500", "0.250000", "2", "0.187500", "0.250000", "1",
                       "0.000000", "0.000000", "0", "0.500000", "0.500000", "2"]
    report = validate(dest, "pose")
    assert not report.fatal, report.summary()


@pytest.mark.parametrize(("names", "flip"), [
    (["nose", "left_eye", "right_eye"], [0, 2, 1]),
    (["left_shoulder", "right_shoulder", "left_hip", "right_hip"], [1, 0, 3, 2]),
    (["a", "b", "c"], [0, 1, 2]),
    (["left_only", "centre"], [0, 1]),  # no right_only: maps to itself
])
def test_flip_idx_from_names(tmp_path, names, flip):
    root = tmp_path / "kp"
    cat = [{"id": 1, "name": "thing", "supercategory": "thing", "keypoints": names}]
    for split, iid in (("train", 1), ("val", 2)):
        images = _images(root / "images" / split, [iid])
        ann = {"id": iid, "image_id": iid, "category_id": 1, "bbox": [4, 4, 20, 20], "iscrowd": 0,
               "keypoints": [10, 10, 2] * len(names)}
        _write(root / "annotations" / f"person_keypoints_{split}.json",
               {"images": images, "annotations": [ann], "categories": cat})
    dest = coco_to_yolo(root, tmp_path / "yolo", "pose")
    assert yaml.safe_load((dest / "data.yaml").read_text())["flip_idx"] == flip


def _roboflow(root: Path, *, extra_cats: list[dict] | None = None) -> Path:
    cats = [{"id": 0, "name": "fishes", "supercategory": "none"},
            {"id": 1, "name": "fish", "supercategory": "fishes"},
            {"id": 2, "name": "stain", "supercategory": "fishes"}, *(extra_cats or [])]
    for split, ids in (("train", [1, 2, 3]), ("valid", [4, 5])):
        images = _images(root / split, ids)
        anns = [{"id": i * 10 + c, "image_id": im["id"], "category_id": c, "bbox": [4, 4, 20, 20], "iscrowd": 0}
                for i, im in enumerate(images) for c in (1, 2)]
        _write(root / split / "_annotations.coco.json", {"images": images, "annotations": anns, "categories": cats})
    return root


def test_roboflow_parent_category_is_dropped_with_a_note(tmp_path):
    notes: list[str] = []
    dest = coco_to_yolo(_roboflow(tmp_path / "rf"), tmp_path / "yolo", "detect", notes=notes)
    assert yaml.safe_load((dest / "data.yaml").read_text())["names"] == {0: "fish", 1: "stain"}
    parent = [n for n in notes if "parent" in n]
    assert len(parent) == 1
    assert "'fishes'" in parent[0] and "not a class" in parent[0] and "category 0" in parent[0]
    assert {r[0] for rows in _labels(dest / "labels/train").values() for r in rows} == {"0", "1"}


def test_unused_category_that_is_not_a_parent_is_kept(tmp_path):
    notes: list[str] = []
    root = _roboflow(tmp_path / "rf", extra_cats=[{"id": 3, "name": "shark", "supercategory": "fishes"}])
    dest = coco_to_yolo(root, tmp_path / "yolo", "detect", notes=notes)
    assert yaml.safe_load((dest / "data.yaml").read_text())["names"] == {0: "fish", 1: "stain", 2: "shark"}
    assert len([n for n in notes if "parent" in n]) == 1  # only 'fishes'
    report = validate(dest, "detect")
    assert report.stats["empty_classes"] == ["shark"]


def test_a_used_parent_category_is_kept(tmp_path):
    root = _roboflow(tmp_path / "rf")
    ann_file = root / "train" / "_annotations.coco.json"
    data = json.loads(ann_file.read_text())
    data["annotations"].append({"id": 999, "image_id": 1, "category_id": 0, "bbox": [1, 1, 5, 5], "iscrowd": 0})
    ann_file.write_text(json.dumps(data))
    notes: list[str] = []
    dest = coco_to_yolo(root, tmp_path / "yolo", "detect", notes=notes)
    assert yaml.safe_load((dest / "data.yaml").read_text())["names"] == {0: "fishes", 1: "fish", 2: "stain"}
    assert not any("parent" in n for n in notes)


def test_crowd_annotations_are_skipped_with_a_note(official, tmp_path):
    f = official / "annotations" / "instances_train2017.json"
    data = json.loads(f.read_text())
    data["annotations"][0]["iscrowd"] = 1
    f.write_text(json.dumps(data))
    notes: list[str] = []
    dest = coco_to_yolo(official, tmp_path / "yolo", "detect", notes=notes)
    assert any("skipped 1 crowd" in n for n in notes)
    assert sum(len(r) for r in _labels(dest / "labels/train").values()) == 3 * 3 - 1


def test_missing_image_is_a_problem(official, tmp_path):
    (official / "val2017" / "000000000011.jpg").unlink()
    with pytest.raises(DatasetError, match="'000000000011.jpg'.*not found"):
        coco_to_yolo(official, tmp_path / "yolo", "detect")
    assert not (tmp_path / "yolo" / "data.yaml").exists()


# ------------------------------------------------------------------------------- the issue's generators


def _make(case: str, out: Path, *args: str) -> Path:
    subprocess.run([sys.executable, str(CASES / case / "make.py"), str(out), *args], check=True,
                   capture_output=True, cwd=out.parent)
    return out


@pytest.fixture
def storage(tmp_path):
    return Storage(settings=Settings(home=tmp_path / "home"))


def test_case_02_roboflow_supercategory(tmp_path, storage):
    out = _make("02-roboflow-coco-supercategory", tmp_path / "fish")
    rec = ingest("fish", str(out), storage=storage)
    assert rec.classes == ["fish", "stain"]
    assert rec.task == "detect" and rec.format == "yolo"
    assert rec.counts["train"] == 8 and rec.counts["val"] == 4
    splits = rec.report["stats"]["splits"]
    assert sum(splits["val"]["instances"].values()) == 8
    assert splits["val"]["instances"] == {"fish": 4, "stain": 4}
    assert any("'fishes'" in n and "not a class" in n for n in rec.report["notes"])
    assert rec.report["auto_split"] is None


def test_case_03_official_coco_layout(tmp_path, storage):
    out = _make("03-coco2017-official-layout", tmp_path / "coco")
    rec = ingest("coco", str(out), storage=storage)
    assert rec.classes == ["person", "bicycle", "car"]
    assert rec.task == "detect"
    assert rec.counts == {"train": 8, "val": 4}
    val = rec.report["stats"]["splits"]["val"]
    assert sum(val["instances"].values()) == 12
    assert val["instances"] == {"person": 4, "bicycle": 4, "car": 4}
    assert any("instances_train2017.json" in n for n in rec.report["notes"])
    assert not rec.report["fatal"]


def test_case_03_renamed_image_folders(tmp_path, storage):
    out = _make("03-coco2017-official-layout", tmp_path / "coco", "renamed")
    rec = ingest("coco2", str(out), storage=storage)
    assert rec.classes == ["person", "bicycle", "car"]
    assert rec.counts == {"train": 8, "val": 4}


def test_case_03_as_pose(tmp_path, storage):
    out = _make("03-coco2017-official-layout", tmp_path / "coco")
    rec = ingest("coco-pose", str(out), task="pose", storage=storage)
    assert rec.task == "pose"
    assert rec.classes == ["person"]
    assert rec.counts == {"train": 8, "val": 4}
    assert sum(rec.report["stats"]["splits"]["val"]["instances"].values()) == 4
