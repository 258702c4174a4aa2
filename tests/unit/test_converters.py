"""tasks.converters: Pascal VOC, CVAT YOLO 1.1 / darknet, LabelMe and Label Studio exports to YOLO."""

from __future__ import annotations

import base64
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from PIL import Image

from core.errors import DatasetError
from tasks import converters
from tasks.converters import convert, detect

REPO = Path(__file__).resolve().parents[2]
CASES = REPO / "tests" / "cases"  # the generators, kept in the repo
W, H = 64, 48


def image(path: Path, size: tuple[int, int] = (W, H), fmt: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (120, 130, 140)).save(path, fmt)
    return path


def rows(path: Path) -> list[list[float]]:
    return [[float(v) for v in line.split()] for line in path.read_text().splitlines() if line.strip()]


def assert_rows(path: Path, expected: list[list[float]]) -> None:
    got = rows(path)
    assert len(got) == len(expected), got
    for g, e in zip(got, expected, strict=True):
        assert g[0] == e[0] and len(g) == len(e), (g, e)
        assert g[1:] == pytest.approx(e[1:], abs=1e-4), (g, e)


def counts(dest: Path) -> dict[str, int]:
    return {d.name: len(list(d.iterdir())) for d in sorted((dest / "images").iterdir())}


def names(dest: Path) -> list[str]:
    data = yaml.safe_load((dest / "data.yaml").read_text())
    return [data["names"][i] for i in range(len(data["names"]))]


def refused(root: Path, fmt: str, dest: Path, task: str = "detect") -> DatasetError:
    with pytest.raises(DatasetError) as e:
        convert(root, fmt, dest, task)
    assert not dest.exists(), "nothing is written on error"
    assert not list(dest.parent.glob(f".{dest.name}.converting-*"))
    return e.value


# ------------------------------------------------------------------------------------------ Pascal VOC


def voc_xml(filename: str, objects: list[tuple[str, tuple[float, float, float, float], int]],
            size: tuple[int, int] | None = (W, H)) -> str:
    objs = "".join(
        f"<object><name>{n}</name><pose>Unspecified</pose><truncated>0</truncated><difficult>{d}</difficult>"
        f"<bndbox><xmin>{b[0]}</xmin><ymin>{b[1]}</ymin><xmax>{b[2]}</xmax><ymax>{b[3]}</ymax></bndbox></object>"
        for n, b, d in objects)
    sz = f"<size><width>{size[0]}</width><height>{size[1]}</height><depth>3</depth></size>" if size else ""
    return (f'<?xml version="1.0" encoding="utf-8"?>\n<annotation><folder>JPEGImages</folder>'
            f"<filename>{filename}</filename><path>C:\\Users\\me\\{filename}</path>{sz}<segmented>0</segmented>"
            f"{objs}</annotation>\n")


CAT = ("cat", (11, 5, 30, 24), 0)  # 1-based inclusive: 0-based edges 10..30 x 4..24
CAT_ROW = [0, 20 / 64, 14 / 48, 20 / 64, 20 / 48]
DOG_EDGE = ("dog", (51, 31, 70, 48), 1)  # reaches past the right edge: clamped to 64; marked difficult
DOG_EDGE_ROW = [1, 57 / 64, 39 / 48, 14 / 64, 18 / 48]


def make_voc(root: Path, splits: dict[str, list[str]] | None = None, labelmap: bool = True) -> Path:
    splits = {"train": ["a", "b", "c"], "val": ["d"]} if splits is None else splits
    stems = sorted({s for v in splits.values() for s in v} or {"a", "b", "c", "d"})
    for i, stem in enumerate(stems):
        image(root / "JPEGImages" / f"{stem}.jpg")
        objects = [CAT, DOG_EDGE] if i == 0 else [CAT]
        (root / "Annotations").mkdir(parents=True, exist_ok=True)
        (root / "Annotations" / f"{stem}.xml").write_text(voc_xml(f"{stem}.jpg", objects))
    for split, names_ in splits.items():
        (root / "ImageSets" / "Main").mkdir(parents=True, exist_ok=True)
        (root / "ImageSets" / "Main" / f"{split}.txt").write_text("".join(f"{s}\n" for s in names_))
    if labelmap:
        (root / "labelmap.txt").write_text("# label:color_rgb:parts:actions\nbackground:0,0,0::\n"
                                           "cat:128,0,0::\ndog:0,128,0::\n")
    return root


def test_voc_converts_splits_labelmap_and_boxes(tmp_path: Path) -> None:
    root = make_voc(tmp_path / "voc")
    assert detect(root) == "voc"
    dest, notes = convert(root, "voc", tmp_path / "out", "detect")
    assert names(dest) == ["cat", "dog"]
    assert counts(dest) == {"train": 3, "val": 1}
    assert_rows(dest / "labels" / "train" / "a.txt", [CAT_ROW, DOG_EDGE_ROW])
    assert_rows(dest / "labels" / "val" / "d.txt", [CAT_ROW])
    assert notes[0] == "converted 4 Pascal VOC files (5 objects)"
    assert "wrote images: train 3, val 1; 2 classes" in notes
    assert "'background' in labelmap.txt is not a class" in notes
    assert "1 object marked difficult kept" in notes
    assert "1 box reaching past the image edge clamped to it" in notes
    assert (root / "JPEGImages" / "a.jpg").exists() and not (root / "labels").exists()  # source untouched


def test_voc_without_labelmap_sorts_the_names_and_without_imagesets_is_all_train(tmp_path: Path) -> None:
    root = make_voc(tmp_path / "voc", splits={}, labelmap=False)
    dest, notes = convert(root, "voc", tmp_path / "out", "detect")
    assert names(dest) == ["cat", "dog"]
    assert counts(dest) == {"train": 4}
    assert any("no val split" in n for n in notes)
    assert yaml.safe_load((dest / "data.yaml").read_text()).keys() == {"path", "train", "names"}


def test_voc_trainval_and_test_use_test_as_val(tmp_path: Path) -> None:
    root = make_voc(tmp_path / "voc", splits={"trainval": ["a", "b"], "test": ["c", "d"]})
    dest, notes = convert(root, "voc", tmp_path / "out", "detect")
    assert counts(dest) == {"train": 2, "val": 2}
    assert any("test as val" in n for n in notes)


def test_voc_size_from_image_header_when_missing(tmp_path: Path) -> None:
    root = tmp_path / "voc"
    image(root / "JPEGImages" / "x.jpg", (100, 50))
    (root / "Annotations").mkdir(parents=True)
    (root / "Annotations" / "x.xml").write_text(voc_xml("x.jpg", [("cat", (1, 1, 50, 25), 0)], size=None))
    dest, _ = convert(root, "voc", tmp_path / "out", "detect")
    assert_rows(dest / "labels" / "train" / "x.txt", [[0, 0.25, 0.25, 0.5, 0.5]])


def test_voc_roboflow_flat_layout(tmp_path: Path) -> None:
    root = tmp_path / "rf"
    for split, n in (("train", 2), ("valid", 1)):
        for i in range(n):
            image(root / split / f"im{i}_jpg.rf.abc.jpg")
            (root / split / f"im{i}_jpg.rf.abc.xml").write_text(voc_xml(f"im{i}_jpg.rf.abc.jpg", [CAT]))
    assert detect(root) == "voc"
    dest, _ = convert(root, "voc", tmp_path / "out", "detect")
    assert names(dest) == ["cat"] and counts(dest) == {"train": 2, "val": 1}
    assert_rows(dest / "labels" / "val" / "im0_jpg.rf.abc.txt", [CAT_ROW])


def test_voc_segment_is_refused(tmp_path: Path) -> None:
    e = refused(make_voc(tmp_path / "voc"), "voc", tmp_path / "out", "segment")
    assert "boxes only" in str(e) and "detect" in str(e)


def test_voc_bad_boxes_unknown_class_and_outside_list_line(tmp_path: Path) -> None:
    root = make_voc(tmp_path / "voc")
    (root / "Annotations" / "b.xml").write_text(voc_xml("b.jpg", [CAT, ("cat", (70, 60, 90, 80), 0)]))
    (root / "Annotations" / "c.xml").write_text(voc_xml("c.jpg", [("bird", (1, 1, 5, 5), 0)]))
    (root / "Annotations" / "d.xml").write_text(voc_xml("d.jpg", [("dog", (20, 5, 10, 9), 0)]))
    with open(root / "ImageSets" / "Main" / "val.txt", "a") as f:
        f.write("../../etc/passwd\n")
    e = refused(root, "voc", tmp_path / "out")
    text = "\n".join(e.problems)
    assert "Annotations/b.xml: object 2 ('cat'): box (70, 60, 90, 80) lies outside the 64x48 image" in e.problems
    assert "Annotations/c.xml: object 1 ('bird'): class 'bird' is not in labelmap.txt" in text
    assert "Annotations/d.xml: object 1 ('dog'): empty box" in text
    assert "ImageSets/Main/val.txt:2: '../../etc/passwd' leads outside the dataset folder" in text
    assert "Annotations/b.xml" in str(e)


BOMB = ('<?xml version="1.0"?>\n<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;">'
        '<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;">]>\n<annotation><filename>a.jpg</filename>'
        '<object><name>&lol3;</name></object></annotation>\n')


@pytest.mark.parametrize("defused", [True, False], ids=["defusedxml", "expat"])
def test_voc_entity_bomb_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, defused: bool) -> None:
    if not defused:
        monkeypatch.setattr(converters, "_defused_fromstring", None)
    elif converters._defused_fromstring is None:
        pytest.skip("defusedxml is not installed")
    root = make_voc(tmp_path / "voc")
    (root / "Annotations" / "a.xml").write_text(BOMB)
    e = refused(root, "voc", tmp_path / "out")
    assert any(p.startswith("Annotations/a.xml: has a DOCTYPE or ENTITY declaration") for p in e.problems), e.problems


def test_voc_missing_image_and_oversized_xml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = make_voc(tmp_path / "voc")
    (root / "JPEGImages" / "b.jpg").unlink()
    (root / "Annotations" / "c.xml").write_text(voc_xml("c.jpg", [CAT]) + " " * 5000)
    monkeypatch.setattr(converters, "MAX_FILE_BYTES", 4000)
    monkeypatch.setattr(converters._read_bytes, "__defaults__", (4000,))
    e = refused(root, "voc", tmp_path / "out")
    assert "Annotations/b.xml: <filename>: image 'b.jpg' not found in JPEGImages/" in e.problems
    assert any(p.startswith("Annotations/c.xml: larger than") for p in e.problems), e.problems


# ---------------------------------------------------------------------------- CVAT YOLO 1.1 / darknet


def make_darknet(root: Path, valid: bool = True) -> Path:
    root.mkdir(parents=True)
    (root / "obj.names").write_text("car\ntruck\n")
    (root / "obj.data").write_text("classes = 2\ntrain = data/train.txt\n" + ("valid = data/valid.txt\n" if valid else "")
                                   + "names = data/obj.names\nbackup = backup/\n")
    for subset, n in (("train", 3), ("valid", 2)) if valid else (("train", 3),):
        lines = []
        for i in range(n):
            image(root / f"obj_{subset}_data" / f"frame_{i:06d}.PNG", fmt="PNG")
            if i < n - 1:  # the last frame has no objects: no .txt, as CVAT writes it
                (root / f"obj_{subset}_data" / f"frame_{i:06d}.txt").write_text(
                    f"{i % 2} 0.500000 0.500000 0.400000 0.300000\n1 0.1 0.2 0.1 0.2\n")
            lines.append(f"data/obj_{subset}_data/frame_{i:06d}.PNG")
        (root / f"{subset}.txt").write_text("\n".join(lines) + "\n")
    return root


def test_darknet_cvat_yolo11(tmp_path: Path) -> None:
    root = make_darknet(tmp_path / "cvat")
    assert detect(root) == "darknet"
    dest, notes = convert(root, "darknet", tmp_path / "out", "detect")
    assert names(dest) == ["car", "truck"]
    assert counts(dest) == {"train": 3, "val": 2}
    assert (dest / "images" / "train" / "frame_000000.PNG").is_file()
    assert_rows(dest / "labels" / "train" / "frame_000001.txt", [[1, 0.5, 0.5, 0.4, 0.3], [1, 0.1, 0.2, 0.1, 0.2]])
    assert rows(dest / "labels" / "val" / "frame_000001.txt") == []
    assert notes[0] == "converted 3 darknet label files"
    assert "2 images without a label file kept as background (no objects)" in notes


def test_darknet_without_valid_is_all_train(tmp_path: Path) -> None:
    dest, notes = convert(make_darknet(tmp_path / "cvat", valid=False), "darknet", tmp_path / "out", "detect")
    assert counts(dest) == {"train": 3}
    assert "no valid.txt: all images are train (make a val split from them)" in notes


def test_darknet_bad_class_outside_line_and_missing_image(tmp_path: Path) -> None:
    root = make_darknet(tmp_path / "cvat")
    (root / "obj_train_data" / "frame_000000.txt").write_text("0 0.5 0.5 0.4 0.3\n5 0.5 0.5 0.1 0.1\n0 0.5 0.5 1.5 2\n")
    with open(root / "train.txt", "a") as f:
        f.write("../../outside/x.PNG\ndata/obj_train_data/nothere.PNG\n")
    e = refused(root, "darknet", tmp_path / "out")
    text = "\n".join(e.problems)
    assert "obj_train_data/frame_000000.txt:2: class id 5 is not in obj.names (ids 0..1)" in text
    assert "obj_train_data/frame_000000.txt:3: coordinates must be normalized" in text
    assert "train.txt:4: '../../outside/x.PNG' leads outside the dataset folder" in text
    assert "train.txt:5: image 'data/obj_train_data/nothere.PNG' not found in the export" in text


def test_darknet_obj_data_naming_files_outside_falls_back_to_the_export(tmp_path: Path) -> None:
    root = make_darknet(tmp_path / "cvat")
    (root / "obj.data").write_text("classes = 2\ntrain = /home/me/darknet/data/train.txt\n"
                                   "valid = ../valid.txt\nnames = /home/me/darknet/data/obj.names\n")
    dest, notes = convert(root, "darknet", tmp_path / "out", "detect")
    assert names(dest) == ["car", "truck"] and counts(dest) == {"train": 3, "val": 2}
    assert "obj.data: names '/home/me/darknet/data/obj.names' leads outside the export folder: ignored" in notes


def test_darknet_segment_needs_polygons(tmp_path: Path) -> None:
    e = refused(make_darknet(tmp_path / "cvat"), "darknet", tmp_path / "out", "segment")
    assert "segment needs polygons" in str(e)


# ------------------------------------------------------------------------------------------- LabelMe


def labelme(path: Path, image_path: str, shapes: list[dict], image_data: str | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"version": "5.4.1", "flags": {}, "shapes": shapes, "imagePath": image_path,
                                "imageData": image_data, "imageHeight": H, "imageWidth": W}))


def shape(label: str, kind: str, points: list[list[float]]) -> dict:
    return {"label": label, "points": points, "group_id": None, "description": "", "shape_type": kind, "flags": {}}


RECT = shape("cat", "rectangle", [[30, 20], [10, 4]])  # corners in any order
POLY = shape("dog", "polygon", [[0, 0], [32, 0], [32, 24]])
CIRCLE = shape("dog", "circle", [[32, 24], [42, 24]])
POINT = shape("cat", "point", [[5, 5]])


def make_labelme(root: Path) -> Path:
    for split, n in (("train", 2), ("val", 1)):
        for i in range(n):
            image(root / split / f"img{i}.jpg")
            labelme(root / split / f"img{i}.json", f"img{i}.jpg", [RECT, POLY, CIRCLE, POINT])
    return root


def test_labelme_detect(tmp_path: Path) -> None:
    root = make_labelme(tmp_path / "lm")
    assert detect(root) == "labelme"
    dest, notes = convert(root, "labelme", tmp_path / "out", "detect")
    assert names(dest) == ["cat", "dog"]
    assert counts(dest) == {"train": 2, "val": 1}
    assert_rows(dest / "labels" / "val" / "img0.txt", [
        [0, 20 / 64, 12 / 48, 20 / 64, 16 / 48],
        [1, 16 / 64, 12 / 48, 32 / 64, 24 / 48],
        [1, 32 / 64, 24 / 48, 20 / 64, 20 / 48],
    ])
    assert notes[0] == "converted 3 LabelMe files (9 shapes)"
    assert "skipped shapes YOLO detect cannot hold: 3 point" in notes


def test_labelme_segment_polygons(tmp_path: Path) -> None:
    dest, notes = convert(make_labelme(tmp_path / "lm"), "labelme", tmp_path / "out", "segment")
    got = rows(dest / "labels" / "train" / "img0.txt")
    assert got[0] == pytest.approx([0, 10 / 64, 4 / 48, 30 / 64, 4 / 48, 30 / 64, 20 / 48, 10 / 64, 20 / 48], abs=1e-4)
    assert got[1] == pytest.approx([1, 0, 0, 0.5, 0, 0.5, 0.5], abs=1e-4)
    assert got[2][0] == 1 and len(got[2]) == 1 + 2 * converters.CIRCLE_POINTS
    assert "3 rectangles written as 4-point polygons" in notes


def test_labelme_image_data_used_only_when_the_file_is_missing(tmp_path: Path) -> None:
    root = tmp_path / "lm"
    buf = io.BytesIO()
    Image.new("RGB", (W, H), (1, 2, 3)).save(buf, "PNG")
    labelme(root / "a.json", "a.png", [RECT], base64.b64encode(buf.getvalue()).decode())
    dest, notes = convert(root, "labelme", tmp_path / "out", "detect")
    out = dest / "images" / "train" / "a.png"
    assert out.read_bytes() == buf.getvalue()
    assert "1 image missing beside the JSON taken from its imageData" in notes
    assert any("no val split" in n for n in notes)


def test_labelme_outside_path_missing_image_and_empty_shape(tmp_path: Path) -> None:
    root = make_labelme(tmp_path / "lm")
    labelme(root / "train" / "evil.json", "../../secret.jpg", [RECT])
    labelme(root / "train" / "lost.json", "lost.jpg", [RECT])
    labelme(root / "val" / "img0.json", "img0.jpg", [shape("cat", "rectangle", [[70, 50], [90, 60]])])
    e = refused(root, "labelme", tmp_path / "out")
    text = "\n".join(e.problems)
    assert "train/evil.json: imagePath: '../../secret.jpg' leads outside the dataset folder" in text
    assert "train/lost.json: imagePath: image 'lost.jpg' not found beside the JSON and no imageData" in text
    assert "val/img0.json: shape 1 ('cat'): lies outside the 64x48 image" in text


def test_labelme_image_linked_outside_is_refused(tmp_path: Path) -> None:
    secret = image(tmp_path / "secret.jpg")
    root = tmp_path / "lm"
    root.mkdir()
    (root / "a.jpg").symlink_to(secret)
    labelme(root / "a.json", "a.jpg", [RECT])
    e = refused(root, "labelme", tmp_path / "out")
    assert "a.json: imagePath: 'a.jpg' leads outside the dataset folder" in "\n".join(e.problems)


# -------------------------------------------------------------------------------------- Label Studio


def ls_task(tid: int, ref: str, results: list[dict]) -> dict:
    return {"id": tid, "data": {"image": ref}, "annotations": [{"id": tid, "was_cancelled": False, "result": results}],
            "predictions": []}


def ls_rect(label: str, x: float, y: float, w: float, h: float) -> dict:
    return {"type": "rectanglelabels", "from_name": "label", "to_name": "image", "original_width": W,
            "original_height": H, "image_rotation": 0,
            "value": {"x": x, "y": y, "width": w, "height": h, "rotation": 0, "rectanglelabels": [label]}}


def ls_poly(label: str, points: list[list[float]]) -> dict:
    return {"type": "polygonlabels", "from_name": "poly", "to_name": "image", "original_width": W, "original_height": H,
            "value": {"points": points, "polygonlabels": [label]}}


KEYPOINT = {"type": "keypointlabels", "original_width": W, "original_height": H,
            "value": {"x": 10, "y": 10, "width": 1, "keypointlabels": ["nose"]}}


def make_ls(root: Path) -> Path:
    image(root / "images" / "1a2b3c4d-cat.jpg")  # stored with the upload prefix
    image(root / "images" / "dog.jpg")  # stored without it
    image(root / "images" / "sub" / "bird.jpg")
    tasks = [
        ls_task(1, "/data/upload/1/1a2b3c4d-cat.jpg", [ls_rect("cat", 25, 50, 50, 25), KEYPOINT]),
        ls_task(2, "/data/upload/1/deadbeef-dog.jpg", [ls_poly("dog", [[0, 0], [50, 0], [50, 50]])]),
        ls_task(3, "/data/local-files/?d=photos/sub/bird.jpg", []),
        {"id": 4, "data": {"image": "/data/upload/1/ffffffff-x.jpg"}, "annotations": []},
    ]
    (root / "export.json").write_text(json.dumps(tasks))
    return root


def test_labelstudio_json(tmp_path: Path) -> None:
    root = make_ls(tmp_path / "ls")
    assert detect(root) == "labelstudio"
    dest, notes = convert(root, "labelstudio", tmp_path / "out", "detect")
    assert names(dest) == ["cat", "dog"]
    assert counts(dest) == {"train": 3}
    assert_rows(dest / "labels" / "train" / "1a2b3c4d-cat.txt", [[0, 0.5, 0.625, 0.5, 0.25]])
    assert_rows(dest / "labels" / "train" / "dog.txt", [[1, 0.25, 0.25, 0.5, 0.5]])
    assert rows(dest / "labels" / "train" / "bird.txt") == []
    assert notes[0] == "converted 3 Label Studio tasks (2 regions)"
    assert "1 task(s) without a submitted annotation left out" in notes
    assert "skipped shapes YOLO detect cannot hold: 1 keypointlabels" in notes
    assert any("no val split" in n for n in notes)


def test_labelstudio_json_segment(tmp_path: Path) -> None:
    dest, _ = convert(make_ls(tmp_path / "ls"), "labelstudio", tmp_path / "out", "segment")
    assert_rows(dest / "labels" / "train" / "dog.txt", [[1, 0, 0, 0.5, 0, 0.5, 0.5]])
    assert_rows(dest / "labels" / "train" / "1a2b3c4d-cat.txt", [[0, 0.25, 0.5, 0.75, 0.5, 0.75, 0.75, 0.25, 0.75]])


def test_labelstudio_outside_and_missing_images(tmp_path: Path) -> None:
    root = make_ls(tmp_path / "ls")
    tasks = json.loads((root / "export.json").read_text())
    tasks += [ls_task(5, "../../etc/secret.jpg", [ls_rect("cat", 1, 1, 5, 5)]),
              ls_task(6, "/data/upload/1/abcdef01-nothere.jpg", [ls_rect("cat", 1, 1, 5, 5)])]
    (root / "export.json").write_text(json.dumps(tasks))
    e = refused(root, "labelstudio", tmp_path / "out")
    text = "\n".join(e.problems)
    assert "export.json: task 5: image '../../etc/secret.jpg' leads outside the dataset folder" in text
    assert "export.json: task 6: image '/data/upload/1/abcdef01-nothere.jpg' not found in the dataset" in text


def test_labelstudio_yolo_export(tmp_path: Path) -> None:
    root = tmp_path / "lsy"
    (root / "labels").mkdir(parents=True)
    (root / "classes.txt").write_text("cat\ndog\n")
    (root / "notes.json").write_text(json.dumps({"categories": [{"id": 0, "name": "cat"}, {"id": 1, "name": "dog"}]}))
    for i in range(3):
        image(root / "images" / f"1a2b3c4{i}-p{i}.jpg")
        (root / "labels" / f"1a2b3c4{i}-p{i}.txt").write_text(f"{i % 2} 0.5 0.5 0.25 0.25\n")
    assert detect(root) == "labelstudio"
    dest, notes = convert(root, "labelstudio", tmp_path / "out", "detect")
    assert names(dest) == ["cat", "dog"] and counts(dest) == {"train": 3}
    assert_rows(dest / "labels" / "train" / "1a2b3c41-p1.txt", [[1, 0.5, 0.5, 0.25, 0.25]])
    assert notes[0] == "converted 3 Label Studio YOLO label files"


# --------------------------------------------------------------------------------------------- common


def test_detect_none_and_bad_arguments(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    assert detect(tmp_path / "empty") is None
    assert detect(tmp_path / "missing") is None
    root = make_voc(tmp_path / "voc")
    with pytest.raises(DatasetError, match="outside it"):
        convert(root, "voc", root / "yolo", "detect")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    with pytest.raises(DatasetError, match="not empty"):
        convert(root, "voc", tmp_path / "full", "detect")
    with pytest.raises(DatasetError, match="not 'classify'"):
        convert(root, "voc", tmp_path / "out", "classify")
    with pytest.raises(DatasetError, match="unknown export format"):
        convert(root, "pascal", tmp_path / "out", "detect")


def test_same_names_in_one_split_stay_apart(tmp_path: Path) -> None:
    root = tmp_path / "lm"
    for folder in ("a", "b"):
        image(root / folder / "img.jpg")
        labelme(root / folder / "img.json", "img.jpg", [RECT])
    dest, _ = convert(root, "labelme", tmp_path / "out", "detect")
    assert sorted(p.name for p in (dest / "labels" / "train").iterdir()) == ["img.txt", "img_1.txt"]


# ------------------------------------------------------------------------------------- the cases


def case(tmp_path: Path, name: str, sub: str) -> Path:
    make = CASES / name / "make.py"
    if not make.is_file():
        pytest.skip(f"{make} is absent")
    out = tmp_path / sub
    subprocess.run([sys.executable, str(make), str(out)], check=True, capture_output=True, timeout=120)
    return out


def val_instances(dest: Path) -> int:
    return sum(len(rows(p)) for p in (dest / "labels" / "val").glob("*.txt"))


def test_case_12_pascal_voc(tmp_path: Path) -> None:
    root = case(tmp_path, "12-pascal-voc", "voc")
    assert detect(root) == "voc"
    dest, notes = convert(root, "voc", tmp_path / "out", "detect")
    assert names(dest) == ["cat", "dog"]
    assert counts(dest) == {"train": 8, "val": 4}
    assert val_instances(dest) == 8
    assert "'background' in labelmap.txt is not a class" in notes


def test_case_13_cvat_yolo11(tmp_path: Path) -> None:
    root = case(tmp_path, "13-cvat-yolo11-darknet", "cvat")
    assert detect(root) == "darknet"
    dest, _ = convert(root, "darknet", tmp_path / "out", "detect")
    assert names(dest) == ["car", "truck"]
    assert counts(dest) == {"train": 8, "val": 4}
    assert val_instances(dest) == 4
