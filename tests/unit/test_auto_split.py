"""Automatic validation splits (tasks.splits) for datasets that arrive with train only."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest
import yaml
from PIL import Image

from core.errors import DatasetError
from core.settings import Settings
from tasks.dataset_ingest import ingest_folder
from tasks.samples import make_sample
from tasks.splits import VAL_FRACTION, auto_split, choose_val, needs_split
from tasks.storage import Storage
from tasks.validation import validate


def _expected_k(n: int, fraction: float) -> int:
    return min(n - 1, max(1 if n >= 2 else 0, round(n * fraction)))


def _image(path: Path, colour: tuple[int, int, int], size: tuple[int, int] = (32, 32)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path)


def _imagefolder(root: Path, per_class: dict[str, int], *, reverse: bool = False) -> Path:
    """train/<class>/<class>_<i>.jpg only; ``reverse`` creates the files in the opposite order."""
    items = [(c, i) for c in per_class for i in range(per_class[c])]
    for n, (c, i) in enumerate(reversed(items) if reverse else items):
        _image(root / "train" / c / f"{c}_{i:03d}.jpg", (n * 7 % 255, i * 13 % 255, len(c) * 20 % 255))
    return root


def _yolo(root: Path, per_class: dict[int, int], names: list[str], *, backgrounds: int = 0,
          empty_labels: int = 0, reverse: bool = False, extra_yaml: dict | None = None) -> Path:
    """data.yaml with only `train:`; images whose first object is of the given class, plus background
    images without a label file (``backgrounds``) and with an empty one (``empty_labels``)."""
    items: list[tuple[str, str | None]] = []
    for cls, n in per_class.items():
        for i in range(n):
            other = (cls + 1) % len(names)
            items.append((f"c{cls}_{i:03d}", f"{cls} 0.5 0.5 0.2 0.2\n{other} 0.3 0.3 0.1 0.1\n"))
    items += [(f"bg_{i:03d}", None) for i in range(backgrounds)]
    items += [(f"empty_{i:03d}", "") for i in range(empty_labels)]
    for n, (stem, label) in enumerate(reversed(items) if reverse else items):
        _image(root / "images" / "train" / f"{stem}.jpg", (n * 11 % 255, 40, 90))
        if label is not None:
            lbl = root / "labels" / "train" / f"{stem}.txt"
            lbl.parent.mkdir(parents=True, exist_ok=True)
            lbl.write_text(label)
    data = {"path": ".", "train": "images/train", "names": dict(enumerate(names)), **(extra_yaml or {})}
    (root / "data.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    return root


def _snapshot(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _files(root: Path, sub: str) -> set[str]:
    base = root / sub
    return {p.relative_to(base).as_posix() for p in base.rglob("*") if p.is_file()}


# ----------------------------------------------------------------------------------------- choose_val


def test_choose_val_is_deterministic_and_order_independent():
    strata = {"a": [f"a{i}" for i in range(10)], "b": [f"b{i}" for i in range(7)]}
    shuffled = {"b": list(reversed(strata["b"])), "a": strata["a"][5:] + strata["a"][:5]}
    first = choose_val(strata, 0.3)
    assert first == choose_val(strata, 0.3)
    assert first == choose_val(shuffled, 0.3)


def test_choose_val_seed_changes_the_choice():
    strata = {"a": [f"a{i:02d}" for i in range(40)]}
    assert choose_val(strata, 0.25, seed=0) != choose_val(strata, 0.25, seed=1)
    assert len(choose_val(strata, 0.25, seed=1)) == 10


@pytest.mark.parametrize("fraction", [0.1, 0.2, 0.25, 0.5, 0.9])
def test_choose_val_per_stratum_counts(fraction):
    sizes = {"one": 1, "two": 2, "three": 3, "five": 5, "ten": 10, "thirty": 30}
    strata = {s: [f"{s}/{i}" for i in range(n)] for s, n in sizes.items()}
    val = choose_val(strata, fraction)
    for s, n in sizes.items():
        k = sum(1 for key in val if key.startswith(f"{s}/"))
        assert k == _expected_k(n, fraction), (s, n, k)
        assert k < n  # never all
        if n >= 2:
            assert k >= 1  # every class with 2+ images is in both splits


def test_choose_val_uses_round():
    # 10 * 0.25 = 2.5 -> round() gives 2 (banker's rounding), 30 * 0.25 = 7.5 -> 8
    assert len(choose_val({"a": [str(i) for i in range(10)]}, 0.25)) == round(2.5)
    assert len(choose_val({"a": [str(i) for i in range(30)]}, 0.25)) == round(7.5)


@pytest.mark.parametrize("fraction", [0, 1, -0.1, 1.5, 0.0, 1.0])
def test_choose_val_refuses_fraction_outside_0_1(fraction):
    with pytest.raises(DatasetError, match="between 0 and 1"):
        choose_val({"a": ["x", "y", "z"]}, fraction)


@pytest.mark.parametrize("strata", [{}, {"a": []}, {"a": ["x"]}, {"a": ["x"], "b": []}])
def test_choose_val_refuses_fewer_than_two_keys(strata):
    with pytest.raises(DatasetError, match="at least 2"):
        choose_val(strata, 0.2)


def test_choose_val_two_singletons_stay_in_train():
    # two strata of one key each: 2 keys in all (accepted), but no stratum can give one away
    assert choose_val({"a": ["x"], "b": ["y"]}, 0.5) == set()


# ---------------------------------------------------------------------------------------- needs_split


def test_needs_split_imagefolder(tmp_path):
    root = _imagefolder(tmp_path / "ds", {"cat": 2, "dog": 2})
    assert needs_split(root, "imagefolder")
    for val in ("val", "valid", "test"):
        (root / val).mkdir()
        assert not needs_split(root, "imagefolder"), val
        (root / val).rmdir()
    assert not needs_split(tmp_path / "nothing", "imagefolder")


def test_needs_split_yolo(tmp_path):
    root = _yolo(tmp_path / "ds", {0: 3}, ["a", "b"])
    assert needs_split(root, "yolo")
    data = yaml.safe_load((root / "data.yaml").read_text())
    for key in ("val", "test"):
        (root / "data.yaml").write_text(yaml.safe_dump({**data, key: "images/train"}))
        assert not needs_split(root, "yolo"), key
    (root / "data.yaml").write_text(yaml.safe_dump({k: v for k, v in data.items() if k != "train"}))
    assert not needs_split(root, "yolo")  # no train: validation says so, no split is made


def test_needs_split_yolo_broken_yaml_is_left_to_validation(tmp_path):
    root = tmp_path / "ds"
    root.mkdir()
    (root / "data.yaml").write_text("train: [unclosed\n")
    assert needs_split(root, "yolo") is False


# --------------------------------------------------------------------------------- auto_split: ImageFolder


def test_imagefolder_split_is_stratified_and_respects_fraction(tmp_path):
    sizes = {"cat": 10, "dog": 5, "owl": 2, "rare": 1}
    root = _imagefolder(tmp_path / "ds", sizes)
    dest, record = auto_split(root, "imagefolder", tmp_path / "out", 0.2)
    assert dest == tmp_path / "out"
    for c, n in sizes.items():
        val = list((dest / "val" / c).glob("*.jpg")) if (dest / "val" / c).is_dir() else []
        train = list((dest / "train" / c).glob("*.jpg"))
        assert len(val) == _expected_k(n, 0.2), c
        assert len(train) + len(val) == n
        if n >= 2:
            assert val and train, c
    assert not (dest / "val" / "rare").exists()  # a single image stays in train
    total = sum(sizes.values())
    assert record == {"val_fraction": 0.2, "seed": 0, "stratified_by": "class folder",
                      "train": total - sum(_expected_k(n, 0.2) for n in sizes.values()),
                      "val": sum(_expected_k(n, 0.2) for n in sizes.values())}


def test_imagefolder_split_is_deterministic_and_order_independent(tmp_path):
    sizes = {"cat": 9, "dog": 6, "owl": 4}
    a = _imagefolder(tmp_path / "a", sizes)
    b = _imagefolder(tmp_path / "b", sizes, reverse=True)
    out1, _ = auto_split(a, "imagefolder", tmp_path / "o1")
    out2, _ = auto_split(a, "imagefolder", tmp_path / "o2")
    out3, _ = auto_split(b, "imagefolder", tmp_path / "o3")
    assert _files(out1, "val") == _files(out2, "val") == _files(out3, "val")
    assert _files(out1, "train") == _files(out3, "train")
    assert _files(out1, "val")  # something was moved


def test_imagefolder_split_leaves_source_unchanged(tmp_path):
    root = _imagefolder(tmp_path / "ds", {"cat": 5, "dog": 5})
    before = _snapshot(root)
    dest, _ = auto_split(root, "imagefolder", tmp_path / "out")
    assert _snapshot(root) == before
    assert not (root / "val").exists()
    # every output file has the bytes of its source
    for split in ("train", "val"):
        for rel in _files(dest, split):
            src = root / "train" / rel
            assert (dest / split / rel).read_bytes() == src.read_bytes()


def test_imagefolder_split_output_validates(tmp_path):
    root = _imagefolder(tmp_path / "ds", {"cat": 6, "dog": 6})
    dest, record = auto_split(root, "imagefolder", tmp_path / "out", 0.5)
    report = validate(dest, "classify")
    assert not report.fatal, report.summary()
    assert report.counts == {"train": record["train"], "val": record["val"]} == {"train": 6, "val": 6}
    assert report.classes == ["cat", "dog"]


def test_imagefolder_split_refuses_one_image(tmp_path):
    root = _imagefolder(tmp_path / "ds", {"cat": 1})
    with pytest.raises(DatasetError, match="at least 2"):
        auto_split(root, "imagefolder", tmp_path / "out")


@pytest.mark.parametrize("fraction", [0, 1, 1.2, -0.5])
def test_imagefolder_split_refuses_bad_fraction(tmp_path, fraction):
    root = _imagefolder(tmp_path / "ds", {"cat": 4, "dog": 4})
    with pytest.raises(DatasetError, match="between 0 and 1"):
        auto_split(root, "imagefolder", tmp_path / "out", fraction)


# ---------------------------------------------------------------------------------------- auto_split: YOLO


def test_yolo_split_is_stratified_by_first_class(tmp_path):
    sizes = {0: 10, 1: 4, 2: 2}
    root = _yolo(tmp_path / "ds", sizes, ["a", "b", "c"], backgrounds=3, empty_labels=2)
    dest, record = auto_split(root, "yolo", tmp_path / "out", 0.25)
    val = _files(dest, "images/val")
    train = _files(dest, "images/train")
    assert not val & train
    for cls, n in sizes.items():
        in_val = [f for f in val if f.startswith(f"c{cls}_")]
        in_train = [f for f in train if f.startswith(f"c{cls}_")]
        assert len(in_val) == _expected_k(n, 0.25), cls
        assert len(in_val) + len(in_train) == n
        assert in_val and in_train
    # background: 3 without a label file + 2 with an empty one form one stratum of 5
    bg_val = [f for f in val if f.startswith(("bg_", "empty_"))]
    assert len(bg_val) == _expected_k(5, 0.25)
    assert record["stratified_by"] == "first object's class"
    assert record["train"] + record["val"] == sum(sizes.values()) + 5
    assert record["val"] == len(val)


def test_yolo_split_links_labels_and_writes_data_yaml(tmp_path):
    root = _yolo(tmp_path / "ds", {0: 4, 1: 4}, ["a", "b"], backgrounds=2,
                 extra_yaml={"download": "curl http://evil", "kpt_shape": [4, 3], "nc": 2})
    dest, _ = auto_split(root, "yolo", tmp_path / "out", 0.5)
    data = yaml.safe_load((dest / "data.yaml").read_text(encoding="utf-8"))
    assert data["path"] == "."
    assert data["train"] == "images/train"
    assert data["val"] == "images/val"
    assert data["names"] == {0: "a", 1: "b"}
    assert data["kpt_shape"] == [4, 3]  # other keys are kept
    assert "download" not in data
    for split in ("train", "val"):
        for rel in _files(dest, f"images/{split}"):
            stem = Path(rel).stem
            src_lbl = root / "labels" / "train" / f"{stem}.txt"
            out_lbl = dest / "labels" / split / f"{stem}.txt"
            if stem.startswith("bg_"):
                assert not out_lbl.exists()  # a background image without a label file stays without one
            else:
                assert out_lbl.read_text() == src_lbl.read_text()


def test_yolo_split_keeps_korean_names(tmp_path):
    root = _yolo(tmp_path / "ds", {0: 3, 1: 3}, ["고양이", "강아지"])
    dest, _ = auto_split(root, "yolo", tmp_path / "out")
    assert yaml.safe_load((dest / "data.yaml").read_text(encoding="utf-8"))["names"] == {0: "고양이", 1: "강아지"}
    assert "고양이" in (dest / "data.yaml").read_text(encoding="utf-8")  # written as text, not escapes


def test_yolo_split_is_deterministic_and_order_independent(tmp_path):
    sizes = {0: 7, 1: 5}
    a = _yolo(tmp_path / "a", sizes, ["x", "y"], backgrounds=3)
    b = _yolo(tmp_path / "b", sizes, ["x", "y"], backgrounds=3, reverse=True)
    o1, r1 = auto_split(a, "yolo", tmp_path / "o1")
    o2, r2 = auto_split(a, "yolo", tmp_path / "o2")
    o3, r3 = auto_split(b, "yolo", tmp_path / "o3")
    assert _files(o1, "images/val") == _files(o2, "images/val") == _files(o3, "images/val")
    assert _files(o1, "labels/val") == _files(o3, "labels/val")
    assert r1 == r2 == r3


def test_yolo_split_source_unchanged_and_output_validates(tmp_path):
    root = _yolo(tmp_path / "ds", {0: 5, 1: 5, 2: 3}, ["a", "b", "c"], backgrounds=1)
    before = _snapshot(root)
    dest, record = auto_split(root, "yolo", tmp_path / "out")
    assert _snapshot(root) == before
    report = validate(dest, "detect")
    assert not report.fatal, report.summary()
    assert report.counts == {"train": record["train"], "val": record["val"]}


def test_yolo_split_with_list_file_train(tmp_path):
    root = _yolo(tmp_path / "ds", {0: 4, 1: 4}, ["a", "b"])
    lines = sorted(f"images/train/{p.name}" for p in (root / "images" / "train").glob("*.jpg"))
    (root / "train.txt").write_text("\n".join(lines) + "\n")
    (root / "data.yaml").write_text(yaml.safe_dump({"train": "train.txt", "names": ["a", "b"]}))
    assert needs_split(root, "yolo")
    dest, record = auto_split(root, "yolo", tmp_path / "out")
    assert record["train"] + record["val"] == 8
    report = validate(dest, "detect")
    assert not report.fatal, report.summary()
    assert report.counts == {"train": record["train"], "val": record["val"]}
    assert sum(report.stats["splits"]["val"]["instances"].values()) == 2 * record["val"]


def test_yolo_split_with_two_train_folders_keeps_every_image(tmp_path):
    root = tmp_path / "ds"
    for part in ("a", "b"):
        for i in range(3):
            _image(root / "images" / part / f"{i}.jpg", (i * 40, 10 if part == "a" else 200, 0))
            lbl = root / "labels" / part / f"{i}.txt"
            lbl.parent.mkdir(parents=True, exist_ok=True)
            lbl.write_text("0 0.5 0.5 0.2 0.2\n")
    (root / "data.yaml").write_text("train: [images/a, images/b]\nnames: [x]\n")
    dest, record = auto_split(root, "yolo", tmp_path / "out")
    assert record["train"] + record["val"] == 6
    assert len(_files(dest, "images/train")) + len(_files(dest, "images/val")) == 6


def test_yolo_split_refuses_one_image(tmp_path):
    root = _yolo(tmp_path / "ds", {0: 1}, ["a"])
    with pytest.raises(DatasetError, match="at least 2"):
        auto_split(root, "yolo", tmp_path / "out")


@pytest.mark.parametrize("fraction", [0, 1, 2])
def test_yolo_split_refuses_bad_fraction(tmp_path, fraction):
    root = _yolo(tmp_path / "ds", {0: 4}, ["a"])
    with pytest.raises(DatasetError, match="between 0 and 1"):
        auto_split(root, "yolo", tmp_path / "out", fraction)


def test_background_only_dataset_splits(tmp_path):
    root = _yolo(tmp_path / "ds", {}, ["a"], backgrounds=5)
    dest, record = auto_split(root, "yolo", tmp_path / "out", 0.4)
    assert record["val"] == 2 and record["train"] == 3
    assert len(_files(dest, "images/val")) == 2


# ------------------------------------------------------------------------------------- through ingest


def _storage(tmp_path: Path) -> Storage:
    return Storage(settings=Settings(home=tmp_path / "home"))


def _yolo_sample_without_val(tmp_path: Path, n_train: int = 10) -> Path:
    root = make_sample("shapes-detect", tmp_path / "det", n_train=n_train, n_val=2, image_size=64)
    shutil.rmtree(root / "images" / "val")
    shutil.rmtree(root / "labels" / "val")
    data = yaml.safe_load((root / "data.yaml").read_text())
    data.pop("val")
    (root / "data.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    return root


def _strata_sizes(root: Path) -> dict[str, int]:
    sizes: dict[str, int] = {}
    for img in (root / "images" / "train").glob("*.jpg"):
        lbl = root / "labels" / "train" / f"{img.stem}.txt"
        rows = [ln.split() for ln in lbl.read_text().splitlines() if ln.split()] if lbl.is_file() else []
        key = rows[0][0] if rows else "background"
        sizes[key] = sizes.get(key, 0) + 1
    return sizes


@pytest.mark.parametrize("fraction", [None, 0.5])
def test_ingest_yolo_without_val_makes_one(tmp_path, fraction):
    root = _yolo_sample_without_val(tmp_path)
    before = _snapshot(root)
    expected_val = sum(_expected_k(n, fraction or VAL_FRACTION) for n in _strata_sizes(root).values())
    record = ingest_folder("noval", root, storage=_storage(tmp_path), val_fraction=fraction)
    split = record.report["auto_split"]
    assert split["val_fraction"] == (fraction or VAL_FRACTION)
    assert split["seed"] == 0
    assert split["train"] + split["val"] == 10
    assert split["val"] == expected_val
    assert record.counts == {"train": 10 - expected_val, "val": expected_val}
    assert record.counts["train"] + record.counts["val"] == 10
    notes = record.report["notes"]
    assert any("no validation split" in n and f"{expected_val} of 10" in n for n in notes), notes
    assert record.report["validated"] is True
    assert _snapshot(root) == before  # the person's folder is never changed
    stored = Path(str(record.uri).removeprefix("file://"))
    assert (stored / "images" / "val").is_dir()
    assert len(list((stored / "images" / "val").glob("*.jpg"))) == expected_val


def test_ingest_with_val_has_no_auto_split(tmp_path):
    root = make_sample("shapes-detect", tmp_path / "det", n_train=4, n_val=2, image_size=64)
    record = ingest_folder("withval", root, storage=_storage(tmp_path))
    assert record.report["auto_split"] is None
    assert not any("no validation split" in n for n in record.report["notes"])
    assert record.counts == {"train": 4, "val": 2}


def test_ingest_imagefolder_without_val(tmp_path):
    root = make_sample("shapes-classify", tmp_path / "cls", n_train=9, n_val=3, image_size=64)
    shutil.rmtree(root / "val")
    record = ingest_folder("clsnoval", root, storage=_storage(tmp_path), val_fraction=0.34)
    split = record.report["auto_split"]
    assert split["stratified_by"] == "class folder"
    assert split["train"] + split["val"] == 9
    assert split["val"] == 3  # 3 classes of 3 images: round(3 * 0.34) = 1 each
    assert record.counts == {"train": 6, "val": 3}
    assert record.classes == ["circle", "square", "triangle"]


def test_ingest_refuses_bad_fraction_and_tiny_train(tmp_path):
    root = _yolo_sample_without_val(tmp_path)
    with pytest.raises(DatasetError, match="between 0 and 1"):
        ingest_folder("bad", root, storage=_storage(tmp_path), val_fraction=1.0)
    tiny = _yolo(tmp_path / "tiny", {0: 1}, ["a"])
    with pytest.raises(DatasetError, match="at least 2"):
        ingest_folder("tiny", tiny, storage=_storage(tmp_path))
