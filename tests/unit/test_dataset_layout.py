"""core.dataset_layout: the one place that knows split names, image suffixes, val-folder aliases and
how a data.yaml is read; real files in tmp_path."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from core import dataset_layout as dl
from core.errors import DatasetError


def _touch(path: Path, data: bytes = b"x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_imports_nothing_of_vtp_but_core_errors():
    source = Path(dl.__file__).read_text()
    imports = [line.split()[1] for line in source.splitlines() if line.startswith(("import ", "from "))]
    vtp = [m for m in imports if m.split(".")[0] in {"core", "tasks", "trainers", "api", "ui", "chat", "flows", "cli"}]
    assert vtp == ["core.errors"]


def test_split_names_order_and_aliases():
    assert dl.SPLITS == ("train", "val", "test")
    assert dl.VAL_DIRS == ("val", "valid", "validation", "test")
    assert [dl.split_of(n) for n in ("instances_train2017", "instances_valid", "VALIDATION", "test", "other")] == [
        "train", "val", "val", "test", None]


def test_is_image_by_suffix_case_insensitive():
    assert dl.is_image(Path("a/B.JPG")) and dl.is_image(Path("x.webp")) and dl.is_image(Path("x.tiff"))
    assert not dl.is_image(Path("labels/a.txt")) and not dl.is_image(Path("a.cache"))


def test_find_val_dir_takes_the_first_alias_present(tmp_path):
    assert dl.find_val_dir(tmp_path) is None
    (tmp_path / "test").mkdir()
    assert dl.find_val_dir(tmp_path) == tmp_path / "test"
    (tmp_path / "valid").mkdir()
    assert dl.find_val_dir(tmp_path) == tmp_path / "valid"
    (tmp_path / "val").mkdir()
    assert dl.find_val_dir(tmp_path) == tmp_path / "val"


def test_class_dirs_sorted_without_hidden_folders_or_files(tmp_path):
    for name in ("b", "a", ".hidden"):
        (tmp_path / name).mkdir()
    _touch(tmp_path / "stray.jpg")
    assert [p.name for p in dl.class_dirs(tmp_path)] == ["a", "b"]


def test_label_path_replaces_the_last_images_folder():
    assert dl.label_path(Path("/d/images/train/x.jpg")) == Path("/d/labels/train/x.txt")
    assert dl.label_path(Path("/images/d/images/val/sub/y.png")) == Path("/images/d/labels/val/sub/y.txt")
    assert dl.label_path(Path("/d/train/z.jpg")) == Path("/d/train/z.txt")


def test_within_keeps_paths_inside_and_follows_links(tmp_path):
    root = tmp_path / "ds"
    _touch(root / "images" / "a.jpg")
    _touch(tmp_path / "outside.jpg")
    os.symlink(tmp_path / "outside.jpg", root / "images" / "link.jpg")
    assert dl.within(root, "images/a.jpg") == root / "images" / "a.jpg"
    for entry in ("/etc/passwd", "../outside.jpg", "~/x", "images/../../outside.jpg", "images/link.jpg", ""):
        assert dl.within(root, entry) is None, entry


def test_list_images_of_a_folder_and_of_a_list(tmp_path):
    root = tmp_path / "ds"
    a = _touch(root / "images" / "train" / "a.jpg")
    b = _touch(root / "images" / "train" / "sub" / "b.PNG")
    _touch(root / "images" / "train" / "notes.txt")
    _touch(tmp_path / "outside.jpg")
    os.symlink(tmp_path / "outside.jpg", root / "images" / "train" / "evil.jpg")
    assert dl.list_images(root / "images" / "train", root) == [a, b]
    assert len(dl.list_images(root / "images" / "train")) == 3  # a view vtp wrote: taken as is
    listing = _touch(root / "train.txt", b"./images/train/a.jpg\n\n../outside.jpg\nimages/train/sub/b.PNG\n")
    assert dl.list_images(listing, root) == [a, b]
    assert dl.read_list(listing, root)[1] == [(3, "../outside.jpg")]
    assert dl.list_images(root / "missing", root) == []


def test_load_yaml_refuses_aliases_and_oversize(tmp_path):
    good = _touch(tmp_path / "data.yaml", b"names: [a, b]\ntrain: images/train\n")
    assert dl.load_yaml(good) == {"names": ["a", "b"], "train": "images/train"}
    bomb = _touch(tmp_path / "bomb.yaml", b"a: &x [1, 2]\nb: *x\n")
    with pytest.raises(DatasetError, match="anchors and aliases"):
        dl.load_yaml(bomb)
    big = _touch(tmp_path / "big.yaml", b"#" * (dl.MAX_YAML_BYTES + 1))
    with pytest.raises(DatasetError, match="larger than"):
        dl.load_yaml(big)
    code = _touch(tmp_path / "code.yaml", b"x: !!python/object/apply:os.system ['true']\n")
    with pytest.raises(DatasetError, match="cannot be read as YAML"):
        dl.load_yaml(code)


def test_class_names_from_a_list_a_mapping_or_nc(tmp_path):
    where = tmp_path / "data.yaml"
    assert dl.class_names({"names": ["a", "b"]}, where) == ["a", "b"]
    assert dl.class_names({"names": {1: "b", 0: "a"}}, where) == ["a", "b"]
    assert dl.class_names({"nc": 2}, where) == ["class_0", "class_1"]
    with pytest.raises(DatasetError, match="without gaps"):
        dl.class_names({"names": {0: "a", 2: "c"}}, where)
    with pytest.raises(DatasetError, match="no class names"):
        dl.class_names({}, where)
    with pytest.raises(DatasetError, match="more than"):
        dl.class_names({"nc": dl.MAX_CLASSES + 1}, where)


def _yolo(root: Path, data: dict) -> Path:
    for split in ("train", "val"):
        _touch(root / "images" / split / "a.jpg")
    (root / "data.yaml").write_text(yaml.safe_dump(data))
    return root


def test_read_data_yaml_resolves_splits_inside_and_drops_download(tmp_path):
    root = _yolo(tmp_path / "ds", {"path": ".", "train": "images/train", "val": ["images/val"], "test": "/etc",
                                   "names": {0: "cat"}, "download": "rm -rf /"})
    layout = dl.read_data_yaml(root)
    assert layout.yaml_file == root.resolve() / "data.yaml" and layout.names == ["cat"]
    assert layout.splits == {"train": [root.resolve() / "images" / "train"], "val": [root.resolve() / "images" / "val"],
                             "test": []}
    assert layout.outside == [("test", "/etc")]
    assert "download" not in layout.data and any("download" in n for n in layout.notes)


def test_read_data_yaml_retries_dotdot_entries_and_ignores_a_path_outside(tmp_path):
    root = _yolo(tmp_path / "ds", {"path": "/somewhere/else", "train": "../images/train", "val": "images/val",
                                   "names": ["a"]})
    layout = dl.read_data_yaml(root)
    assert layout.splits["train"] == [root.resolve() / "images" / "train"] and not layout.outside
    assert any("ignored `path: /somewhere/else`" in n for n in layout.notes)


def test_read_data_yaml_of_a_prepared_view_with_its_yaml_beside_it(tmp_path):
    """vtp's own view: the data.yaml sits beside the view folder and names it by its absolute path."""
    view = _yolo(tmp_path / "work" / "dataset", {"train": "x"})
    (view / "data.yaml").unlink()
    yaml_file = tmp_path / "work" / "data.yaml"
    yaml_file.write_text(yaml.safe_dump({"path": str(view.resolve()), "train": "images/train", "val": "images/val",
                                         "names": {0: "a", 1: "b"}}))
    layout = dl.read_data_yaml(view, yaml_file)
    assert layout.names == ["a", "b"] and not layout.notes and not layout.outside
    assert layout.splits["val"] == [view.resolve() / "images" / "val"]


def test_read_data_yaml_errors_name_the_file(tmp_path):
    (tmp_path / "data.yaml").write_text("- just\n- a list\n")
    with pytest.raises(DatasetError, match="should be a mapping"):
        dl.read_data_yaml(tmp_path)
    assert dl.find_data_yaml(tmp_path) == tmp_path / "data.yaml"
    assert dl.find_data_yaml(tmp_path / "nope") is None
