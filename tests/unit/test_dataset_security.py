"""Issue 13, datasets: each attack reproduced against the real component, with a harmless proof file
that must never appear and nothing outside the dataset read, written or stored (docs/security.md,
"Datasets")."""

from __future__ import annotations

import io
import json
import os
import shutil
import struct
import tarfile
import time
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from core.errors import DatasetError
from core.settings import Settings
from tasks import dataset_store
from tasks.archives import MAX_ENTRIES, PICKLE_REASON, extract
from tasks.dataset_formats import MAX_CLASSES, coco_to_yolo, load_yaml, prepare_local, read_yolo
from tasks.dataset_ingest import check_data_root, ingest
from tasks.samples import make_sample
from tasks.storage import Storage
from tasks.validation import validate


class _Payload:
    """Unpickling this creates the folder ``proof``: the harmless stand-in for any code."""

    def __init__(self, proof: Path):
        self.proof = str(proof)

    def __reduce__(self):
        return os.mkdir, (self.proof,)


def pickle_cache(path: Path, proof: Path) -> Path:
    """An Ultralytics-style ``.cache`` (np.save of an object) whose loading runs the payload."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        np.save(f, np.array(_Payload(proof), dtype=object), allow_pickle=True)
    return path


def test_the_proof_payload_is_live(tmp_path):
    """The planted caches below would run their payload if anything loaded them as ultralytics does."""
    proof = tmp_path / "proof"
    np.load(pickle_cache(tmp_path / "x.cache", proof), allow_pickle=True)
    assert proof.is_dir()


def _tree(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}


def _zip_folder(folder: Path, archive: Path, extra: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(archive, "w") as zf:
        for p in sorted(folder.rglob("*")):
            if p.is_file():
                zf.write(p, f"ds/{p.relative_to(folder).as_posix()}")
        for name, data in extra.items():
            zf.writestr(f"ds/{name}", data)
    return archive


# ------------------------------------------------------------------------- 1. no pickle from user data


def test_archive_import_drops_pickles_and_other_files_and_reports_them(tmp_path):
    proof = tmp_path / "proof"
    sample = make_sample("shapes-detect", tmp_path / "src", n_train=3, n_val=2, image_size=64)
    cache = pickle_cache(tmp_path / "train.cache", proof).read_bytes()
    archive = _zip_folder(sample, tmp_path / "d.zip", {
        "labels/train.cache": cache, "labels/val.cache": cache, "extra/model.pt": cache, "x.pkl": cache,
        "arr.npy": cache, "run.sh": b"touch /tmp/pwned\n", "__MACOSX/._a.jpg": b"meta",
    })
    settings = Settings(home=tmp_path / "home")
    record = ingest("d", str(archive), storage=Storage(settings=settings), label="d.zip")
    stored = _tree(settings.home / "storage" / "datasets" / "d" / record.hash)
    assert not any(n.endswith((".cache", ".pt", ".pkl", ".npy", ".sh")) for n in stored), stored
    assert any(n.startswith("images/train/") for n in stored) and "data.yaml" in stored
    dropped = {d["file"]: d["reason"] for d in record.report["dropped"]}
    assert dropped["ds/labels/train.cache"] == PICKLE_REASON and dropped["ds/x.pkl"] == PICKLE_REASON
    assert dropped["ds/extra/model.pt"] == PICKLE_REASON and "not a dataset file" in dropped["ds/run.sh"]
    assert record.report["dropped_count"] == 7 and record.report["validated"] is True
    assert not proof.exists()


def test_folder_import_leaves_pickles_out_without_changing_the_folder(tmp_path):
    proof = tmp_path / "proof"
    folder = make_sample("shapes-classify", tmp_path / "src", n_train=4, n_val=2, image_size=32)
    pickle_cache(folder / "train.cache", proof)
    settings = Settings(home=tmp_path / "home")
    record = ingest("c", str(folder), storage=Storage(settings=settings))
    assert (folder / "train.cache").is_file(), "a person's own folder is never changed"
    assert "train.cache" not in _tree(settings.home / "storage" / "datasets" / "c")
    assert [d["file"] for d in record.report["dropped"]] == ["train.cache"]
    assert not proof.exists()


def test_tar_import_drops_pickles(tmp_path):
    proof = tmp_path / "proof"
    pickle_cache(tmp_path / "t.cache", proof)
    archive = tmp_path / "d.tar.gz"
    with tarfile.open(archive, "w:gz") as tf:
        tf.add(tmp_path / "t.cache", arcname="ds/labels/train.cache")
        info = tarfile.TarInfo("ds/data.yaml")
        info.size = 3
        tf.addfile(info, io.BytesIO(b"a: 1"[:3]))
    dropped: list[tuple[str, str]] = []
    root = extract(archive, tmp_path / "out", dropped=dropped)
    assert _tree(root) == {"data.yaml"} and dropped == [("ds/labels/train.cache", PICKLE_REASON)]
    assert not proof.exists()


@pytest.fixture
def ultralytics_env(vtp_home):
    from trainers.ultralytics import env

    env.import_ultralytics()
    return env


def test_ultralytics_never_loads_a_planted_label_cache_detect(tmp_path, ultralytics_env):
    """Plant pickle caches everywhere ultralytics would look for them next to the dataset (the
    shared cache folder a run trains from); ultralytics builds its datasets, the payload never
    runs, and its own caches are written in the run's work folder only."""
    from ultralytics.data.dataset import YOLODataset
    from ultralytics.data.utils import check_det_dataset

    proof = tmp_path / "proof"
    root = make_sample("shapes-detect", tmp_path / "cache" / "datasets" / "k", n_train=3, n_val=2, image_size=64)
    for split in ("train", "val"):
        pickle_cache(root / "labels" / f"{split}.cache", proof)
    before = _tree(root)
    info = prepare_local(root, "detect", tmp_path / "work")
    data = check_det_dataset(str(info.data_yaml))
    for split in ("train", "val", "train"):  # the second train build reads the cache this run wrote
        ds = YOLODataset(img_path=data[split], data=data, task="detect", imgsz=64, augment=False)
        assert len(ds.labels) > 0
    assert not proof.exists()
    assert _tree(root) == before, "nothing written next to the dataset"
    view = tmp_path / "work" / "dataset"
    assert (view / "labels" / "train.cache").is_file() and (view / "labels" / "val.cache").is_file()

    # a cache replaced behind this run's back (same place) is not loaded either
    pickle_cache(view / "labels" / "train.cache", proof)
    YOLODataset(img_path=data["train"], data=data, task="detect", imgsz=64, augment=False)
    assert not proof.exists()

    # and a fresh prepare (a retry) starts from an empty view: no cache survives it
    prepare_local(root, "detect", tmp_path / "work")
    assert not (view / "labels" / "train.cache").exists()


def test_ultralytics_never_loads_a_planted_label_cache_classify(tmp_path, ultralytics_env):
    from ultralytics.cfg import get_cfg
    from ultralytics.data.dataset import ClassificationDataset

    proof = tmp_path / "proof"
    root = make_sample("shapes-classify", tmp_path / "cache" / "datasets" / "c", n_train=4, n_val=2, image_size=32)
    pickle_cache(root / "train.cache", proof)
    pickle_cache(root / "val.cache", proof)
    info = prepare_local(root, "classify", tmp_path / "work")
    args = get_cfg(overrides={"imgsz": 32})
    for split in ("train", "val"):
        ds = ClassificationDataset(root=str(Path(info.root) / split), args=args, augment=False, prefix="")
        assert len(ds.samples) > 0
    assert not proof.exists()
    assert (Path(info.root) / "train.cache").is_file() and (root / "train.cache").read_bytes()[:6] == b"\x93NUMPY"


# ---------------------------------------------------------------------- 2. datasets are closed worlds


def _yolo_with_list(tmp_path: Path, lines: list[str]) -> Path:
    root = make_sample("shapes-detect", tmp_path / "ds", n_train=2, n_val=1, image_size=64)
    (root / "train.txt").write_text("".join(f"{ln}\n" for ln in lines))
    data = yaml.safe_load((root / "data.yaml").read_text())
    data.update(path=".", train="train.txt")
    (root / "data.yaml").write_text(yaml.safe_dump(data))
    return root


def _outside_errors(report) -> list[str]:
    return [p.message for p in report.errors if "outside the dataset" in p.message]


def test_split_list_lines_outside_the_dataset_are_refused_alike(tmp_path):
    other = make_sample("shapes-detect", tmp_path / "other", n_train=1, n_val=1, image_size=64)
    secret = tmp_path / "secret.jpg"
    shutil.copy(next((other / "images/train").iterdir()), secret)
    lines = ["/etc/shadow", "/nonexistent/x.jpg", "../../../etc/passwd", "../other/images/train/0.jpg",
             f"{other}/images/train/0.jpg", "../secret.jpg", "../nothing-here.jpg", "./link.jpg", "~/x.jpg"]
    root = _yolo_with_list(tmp_path, lines)
    (root / "link.jpg").symlink_to(secret)  # a link out of the dataset
    report = validate(root, "detect")
    errors = _outside_errors(report)
    assert len(errors) == len(lines), report.summary()
    # one message, whatever exists there: only the person's own line differs
    assert len({m.split("' ", 1)[1] for m in errors}) == 1
    assert not any("cannot be read" in p.message or "Permission" in p.message for p in report.problems)
    with pytest.raises(DatasetError, match="outside the dataset folder"):
        prepare_local(root, "detect", tmp_path / "work")
    assert not (tmp_path / "work" / "dataset").exists() or not any((tmp_path / "work" / "dataset").rglob("*.jpg"))


def test_split_entries_outside_get_one_message_existing_or_not(tmp_path):
    root = make_sample("shapes-detect", tmp_path / "ds", n_train=2, n_val=1, image_size=64)
    messages = []
    for entry in ("/etc", "/does/not/exist", "../../..", "../../nope"):
        data = yaml.safe_load((root / "data.yaml").read_text())
        data.update(val=entry)
        (root / "data.yaml").write_text(yaml.safe_dump(data))
        errors = _outside_errors(validate(root, "detect"))
        assert len(errors) == 1
        messages.append(errors[0].replace(repr(entry), "<entry>"))
    assert len(set(messages)) == 1, messages


def test_yaml_path_outside_is_ignored_without_looking(tmp_path):
    root = make_sample("shapes-detect", tmp_path / "ds", n_train=2, n_val=1, image_size=64)
    notes = []
    for declared in ("/etc", "/does/not/exist"):
        data = yaml.safe_load((root / "data.yaml").read_text())
        data["path"] = declared
        (root / "data.yaml").write_text(yaml.safe_dump(data))
        layout = read_yolo(root)
        assert all(root.resolve() in p.parents for ps in layout.splits.values() for p in ps)
        notes.append(layout.notes[0].replace(declared, "<path>"))
    assert notes[0] == notes[1]


def test_coco_file_name_outside_is_refused_alike(tmp_path):
    src = tmp_path / "coco"
    (src / "annotations").mkdir(parents=True)
    Image.new("RGB", (32, 32)).save(tmp_path / "outside.jpg")
    names = ["../outside.jpg", "../missing.jpg", "/etc/hostname", "/nonexistent.jpg"]
    doc = {"images": [{"id": i, "file_name": n, "width": 32, "height": 32} for i, n in enumerate(names)],
           "annotations": [], "categories": [{"id": 1, "name": "a"}]}
    for split in ("train", "val"):
        (src / "annotations" / f"instances_{split}.json").write_text(json.dumps(doc))
    with pytest.raises(DatasetError) as e:
        coco_to_yolo(src, tmp_path / "out")
    problems = [p.split("(id", 1)[1] for p in e.value.problems]
    assert len(problems) == 8 and len({p.split(")", 1)[1] for p in problems}) == 1
    assert not (tmp_path / "out").exists()


def test_file_uris_only_under_the_storage_folder_and_data_roots(tmp_path, monkeypatch):
    settings = Settings(home=tmp_path / "home")
    storage = Storage(settings=settings)
    with pytest.raises(DatasetError) as a:
        check_data_root("file:///etc", settings)
    with pytest.raises(DatasetError) as b:
        check_data_root("file:///does/not/exist", settings)
    assert str(a.value).replace("/etc", "X") == str(b.value).replace("/does/not/exist", "X")
    with pytest.raises(DatasetError, match="VTP_DATA_ROOTS"):
        check_data_root("file:///.", settings)
    with pytest.raises(DatasetError, match="VTP_DATA_ROOTS"):
        check_data_root(f"file://{settings.home}/storage/../..", settings)
    check_data_root(f"{settings.storage_url}/datasets/x", settings)
    with pytest.raises(DatasetError, match="VTP_DATA_ROOTS"):  # a run naming the URI
        dataset_store.resolve(storage, "file:///")
    # a registry entry written before the rule (or by hand) is refused when used
    storage.write_json({"old": {"name": "old", "uri": "file:///etc"}}, "datasets", "index.json")
    with pytest.raises(DatasetError, match="VTP_DATA_ROOTS"):
        dataset_store.download(storage, "old", tmp_path / "cache")
    assert not (tmp_path / "cache" / "datasets").exists() or not any((tmp_path / "cache" / "datasets").iterdir())
    data = make_sample("shapes-classify", tmp_path / "data" / "c", n_train=2, n_val=1, image_size=32)
    allowed = Settings(home=tmp_path / "home", data_roots=f"{tmp_path / 'elsewhere'}, {tmp_path / 'data'}")
    check_data_root(data.as_uri(), allowed)
    assert dataset_store.resolve(Storage(settings=allowed), data.as_uri()).uri == data.as_uri()


# --------------------------------------------------------------------------------- 3. bounded inputs


def test_yaml_alias_bomb_is_refused_at_once(tmp_path):
    root = make_sample("shapes-detect", tmp_path / "ds", n_train=2, n_val=1, image_size=64)
    levels = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    levels += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 10)]
    text = (root / "data.yaml").read_text().replace("names:", "old_names:") + "\n".join(levels) + "\nnames: *a9\n"
    (root / "data.yaml").write_text(text)
    started = time.monotonic()
    report = validate(root, "detect")
    assert time.monotonic() - started < 60  # unbounded, this expands to 10**10 names
    assert report.fatal and "aliases" in report.summary()
    with pytest.raises(DatasetError, match="aliases"):
        load_yaml(root / "data.yaml")
    settings = Settings(home=tmp_path / "home")
    with pytest.raises(DatasetError, match="aliases"):
        ingest("bomb", str(root), storage=Storage(settings=settings))
    assert dataset_store.list_datasets(Storage(settings=settings)) == {}


def test_yaml_size_and_class_caps(tmp_path):
    root = make_sample("shapes-detect", tmp_path / "ds", n_train=2, n_val=1, image_size=64)
    data = yaml.safe_load((root / "data.yaml").read_text())
    (root / "data.yaml").write_text(yaml.safe_dump(data) + "# " + "x" * 1_000_001 + "\n")
    with pytest.raises(DatasetError, match="larger than"):
        read_yolo(root)
    for bad in ({"nc": 1_000_000_000, "names": None}, {"names": [f"c{i}" for i in range(MAX_CLASSES + 1)]}):
        (root / "data.yaml").write_text(yaml.safe_dump({**data, **bad}))
        with pytest.raises(DatasetError, match="more than 10000 classes"):  # before any list is built
            read_yolo(root)


def _png_header_only(path: Path, width: int, height: int) -> Path:
    """A tiny PNG whose header claims ``width`` x ``height`` (a decompression bomb's first bytes)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    raw = zlib.compress(b"\0" * 1000)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
                     + chunk(b"IDAT", raw) + chunk(b"IEND", b""))
    return path


def test_huge_image_is_refused_from_its_header_and_skipped_by_previews(tmp_path):
    from api.dataset_preview import _thumb

    root = make_sample("shapes-detect", tmp_path / "ds", n_train=2, n_val=1, image_size=64)
    big = _png_header_only(root / "images" / "val" / "big.png", 13000, 13000)
    assert big.stat().st_size < 2000
    report = validate(root, "detect")
    assert any("megapixels" in p.message for p in report.errors), report.summary()
    assert _thumb(big) is None


def test_previews_decode_downscaled(tmp_path):
    from api.dataset_preview import THUMB, _thumb

    Image.new("RGB", (4000, 3000), (200, 10, 10)).save(tmp_path / "a.jpg", quality=50)
    with Image.open(tmp_path / "a.jpg") as im:
        im.draft("RGB", (THUMB, THUMB))
        assert im.size[0] <= 4000 // 8 * 2  # JPEG decodes at 1/8 scale: ~64x less memory than full size
    thumb = _thumb(tmp_path / "a.jpg")
    assert thumb is not None and thumb.size == (THUMB, 192)


def test_zip_entry_count_cap(tmp_path):
    archive = tmp_path / "many.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_STORED) as zf:
        for i in range(MAX_ENTRIES + 1):
            zf.writestr(f"d/{i}.txt", b"")
    with pytest.raises(DatasetError, match="more than 50000 entries"):
        extract(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_zip_bomb_by_ratio_is_refused_before_writing(tmp_path):
    archive = tmp_path / "bomb.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("d/data.yaml", "names: [a]\n")
        zf.writestr("d/images/train/a.jpg", b"\0" * (64 * 1024**2))
    assert archive.stat().st_size < 200_000
    with pytest.raises(DatasetError, match="compression bomb"):
        extract(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_tar_gz_bomb_by_ratio_is_refused_before_writing(tmp_path):
    archive = tmp_path / "bomb.tar.gz"
    with tarfile.open(archive, "w:gz") as tf:
        info = tarfile.TarInfo("d/images/train/a.jpg")
        info.size = 64 * 1024**2
        tf.addfile(info, io.BytesIO(b"\0" * info.size))
    with pytest.raises(DatasetError, match="compression bomb"):
        extract(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_coco_category_cap(tmp_path):
    src = tmp_path / "coco"
    (src / "annotations").mkdir(parents=True)
    doc = {"images": [], "annotations": [], "categories": [{"id": i, "name": f"c{i}"} for i in range(MAX_CLASSES + 1)]}
    for split in ("train", "val"):
        (src / "annotations" / f"instances_{split}.json").write_text(json.dumps(doc))
    with pytest.raises(DatasetError, match="more than 10000 categories"):
        coco_to_yolo(src, tmp_path / "out")
