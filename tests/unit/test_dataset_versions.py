"""Dataset versions: content-addressed imports, NAME@vN / NAME@<hash> references, legacy records."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from PIL import Image
from pydantic import ValidationError

from core.errors import DatasetError
from core.settings import Settings
from core.spec import TrainSpec
from tasks.cache import VersionInfo
from tasks.dataset_store import (
    INDEX,
    DatasetRecord,
    download,
    import_folder,
    list_datasets,
    pinned,
    read_report,
    register,
    resolve,
    version_hash,
)
from tasks.storage import MANIFEST, Storage, build_manifest, upload_folder


@pytest.fixture
def storage(tmp_path):
    return Storage(settings=Settings(home=tmp_path / "home"))


def _folder(root: Path, *, colour: int = 10, extra: str | None = None) -> Path:
    for i in range(3):
        p = root / "images" / "train" / f"{i}.png"
        p.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (16, 16), (colour, i * 30, 0)).save(p)
    (root / "data.yaml").write_text("train: images/train\nval: images/train\nnames: [a]\n")
    if extra is not None:
        (root / "notes.txt").write_text(extra)
    return root


def _local(storage: Storage, *parts: str) -> Path:
    return Path(storage.path(*parts))


def _tree(path: Path) -> dict[str, tuple[str, int]]:
    return {p.relative_to(path).as_posix(): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
            for p in sorted(path.rglob("*")) if p.is_file()}


META = {"format": "yolo", "task": "detect", "classes": ["a"], "counts": {"train": 3, "val": 3}}


# --------------------------------------------------------------------------------------- import_folder


def test_first_import_is_v1_under_its_hash(storage, tmp_path):
    src = _folder(tmp_path / "src")
    rec = import_folder(storage, "pets", src, report={"ok": True}, **META)
    assert rec.version == 1
    assert rec.stored is True
    assert rec.hash == version_hash(build_manifest(src))
    assert len(rec.hash) == 12
    assert rec.uri == storage.uri("datasets", "pets", rec.hash)
    assert rec.ref == "pets@v1"
    assert rec.classes == ["a"] and rec.format == "yolo" and rec.task == "detect"
    folder = _local(storage, "datasets", "pets", rec.hash)
    assert (folder / MANIFEST).is_file()
    assert (folder / "images" / "train" / "0.png").read_bytes() == (src / "images/train/0.png").read_bytes()
    assert [v["version"] for v in rec.versions] == [1]
    assert storage.read_json("datasets", "pets", f"{rec.hash}.report.json") == {"ok": True}


def test_same_content_is_the_same_version_and_uploads_nothing(storage, tmp_path):
    src = _folder(tmp_path / "src")
    first = import_folder(storage, "pets", src, report={"n": 1}, **META)
    base = _local(storage, "datasets", "pets")
    before = _tree(base)
    copy = _folder(tmp_path / "copy")  # same bytes, written again (new mtimes)
    again = import_folder(storage, "pets", copy, report={"n": 2}, **META)
    assert again.stored is False
    assert (again.version, again.hash, again.uri) == (first.version, first.hash, first.uri)
    assert _tree(base) == before  # no file written or rewritten, the report included
    assert read_report(storage, again) == {"n": 1}
    assert len(list_datasets(storage)["pets"].versions) == 1


def test_changed_content_is_v2_and_v1_is_untouched(storage, tmp_path):
    v1 = import_folder(storage, "pets", _folder(tmp_path / "one"), **META)
    v1_folder = _local(storage, "datasets", "pets", v1.hash)
    before = _tree(v1_folder)
    v2 = import_folder(storage, "pets", _folder(tmp_path / "two", colour=200), **META)
    assert v2.version == 2 and v2.stored is True
    assert v2.hash != v1.hash
    assert v2.uri == storage.uri("datasets", "pets", v2.hash)
    assert _local(storage, "datasets", "pets", v2.hash, MANIFEST).is_file()
    assert _tree(v1_folder) == before
    assert [(v["version"], v["hash"]) for v in v2.versions] == [(1, v1.hash), (2, v2.hash)]
    latest = list_datasets(storage)["pets"]
    assert (latest.version, latest.uri) == (2, v2.uri)
    # importing v1's content again is v1 again, not v3
    back = import_folder(storage, "pets", _folder(tmp_path / "three"), **META)
    assert (back.version, back.hash, back.stored) == (1, v1.hash, False)
    assert len(back.versions) == 2


def test_an_added_file_is_a_new_version(storage, tmp_path):
    v1 = import_folder(storage, "pets", _folder(tmp_path / "one"), **META)
    v2 = import_folder(storage, "pets", _folder(tmp_path / "two", extra="x"), **META)
    assert v2.version == 2 and v2.hash != v1.hash


def test_versions_of_other_names_are_independent(storage, tmp_path):
    a = import_folder(storage, "a", _folder(tmp_path / "one"), **META)
    b = import_folder(storage, "b", _folder(tmp_path / "two"), **META)
    assert a.hash == b.hash and a.version == b.version == 1
    assert a.uri != b.uri
    assert b.stored is True


def test_import_refuses_bad_name_and_empty_folder(storage, tmp_path):
    with pytest.raises(DatasetError, match="not allowed"):
        import_folder(storage, "../x", _folder(tmp_path / "one"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="no files"):
        import_folder(storage, "pets", tmp_path / "empty")


# -------------------------------------------------------------------------------------------- resolve


@pytest.fixture
def two_versions(storage, tmp_path):
    v1 = import_folder(storage, "pets", _folder(tmp_path / "one"), report={"which": 1}, **META)
    v2 = import_folder(storage, "pets", _folder(tmp_path / "two", colour=99), report={"which": 2},
                       **{**META, "classes": ["a", "b"]})
    return v1, v2


def test_resolve_name_is_latest(storage, two_versions):
    _, v2 = two_versions
    rec = resolve(storage, "pets")
    assert (rec.version, rec.hash, rec.uri, rec.classes) == (2, v2.hash, v2.uri, ["a", "b"])
    assert rec.ref == "pets@v2"


def test_resolve_pinned_version(storage, two_versions):
    v1, v2 = two_versions
    rec = resolve(storage, "pets@v1")
    assert (rec.version, rec.hash, rec.uri, rec.classes) == (1, v1.hash, v1.uri, ["a"])
    assert rec.ref == "pets@v1"
    assert len(rec.versions) == 2  # the record still lists every version
    assert resolve(storage, "pets@v2").uri == v2.uri


@pytest.mark.parametrize("length", [4, 6, 12])
def test_resolve_hash_prefix(storage, two_versions, length):
    v1, v2 = two_versions
    if v1.hash[:length] == v2.hash[:length]:
        pytest.skip("the two hashes share this prefix")
    assert resolve(storage, f"pets@{v1.hash[:length]}").version == 1
    assert resolve(storage, f"pets@{v2.hash[:length]}").version == 2


def test_resolve_unknown_version_lists_versions(storage, two_versions):
    v1, v2 = two_versions
    with pytest.raises(DatasetError) as e:
        resolve(storage, "pets@v3")
    msg = str(e.value)
    assert "'v3'" in msg and "not a version" in msg
    assert f"v1 ({v1.hash})" in msg and f"v2 ({v2.hash})" in msg
    other = "0000" if not v1.hash.startswith("0000") and not v2.hash.startswith("0000") else "ffff"
    with pytest.raises(DatasetError, match="not a version of it"):
        resolve(storage, f"pets@{other}")


@pytest.mark.parametrize("selector", ["x y", "latest", "v", "abc", "V1"])
def test_resolve_malformed_selector(storage, two_versions, selector):
    with pytest.raises(DatasetError, match="v<number>"):
        resolve(storage, f"pets@{selector}")


def test_resolve_unknown_name_with_version(storage, two_versions):
    with pytest.raises(DatasetError, match="'cats' is not registered"):
        resolve(storage, "cats@v1")


def test_pinned_ambiguous_prefix():
    rec = DatasetRecord(name="x", uri="file:///s/datasets/x/abcd22223333", versions=[
        {"version": 1, "hash": "abcd11112222", "uri": "file:///s/datasets/x/abcd11112222"},
        {"version": 2, "hash": "abcd22223333", "uri": "file:///s/datasets/x/abcd22223333"},
    ])
    with pytest.raises(DatasetError, match="more than one version"):
        pinned(rec, "abcd")
    assert pinned(rec, "abcd1").uri.endswith("abcd11112222")
    assert pinned(rec, "v2").version == 2


def test_read_report_follows_the_version(storage, two_versions):
    assert read_report(storage, resolve(storage, "pets@v1")) == {"which": 1}
    assert read_report(storage, resolve(storage, "pets")) == {"which": 2}
    assert read_report(storage, DatasetRecord(name="reg", uri="s3://b/p")) is None
    assert read_report(storage, DatasetRecord(name="pets", uri="x", hash="0" * 12)) is None


# ---------------------------------------------------------------------------------------- legacy records


def _legacy(storage: Storage, src: Path) -> None:
    """A dataset imported before versions: files under datasets/<name>/, an index entry without versions."""
    upload_folder(storage, src, "datasets", "pets")
    storage.write_json({"pets": {"name": "pets", "uri": storage.uri("datasets", "pets"), "format": "yolo",
                                 "task": "detect", "classes": ["old"], "counts": {"train": 3}, "created": 1.0}},
                       *INDEX)


def test_legacy_record_reads_without_versions(storage, tmp_path):
    _legacy(storage, _folder(tmp_path / "old"))
    rec = resolve(storage, "pets")
    assert rec.uri == storage.uri("datasets", "pets")
    assert rec.version is None and rec.hash is None and rec.versions == []
    assert rec.ref == "pets"
    assert read_report(storage, rec) is None


def test_legacy_record_then_reimport_makes_v2(storage, tmp_path):
    _legacy(storage, _folder(tmp_path / "old"))
    legacy_uri = storage.uri("datasets", "pets")
    rec = import_folder(storage, "pets", _folder(tmp_path / "new", colour=77), **META)
    assert rec.version == 2 and rec.stored is True
    assert rec.uri == storage.uri("datasets", "pets", rec.hash)
    v1, v2 = rec.versions
    assert v1["version"] == 1 and v1["uri"] == legacy_uri and v1["hash"] is None
    assert v1["classes"] == ["old"] and v1["created"] == 1.0
    assert v2["version"] == 2 and v2["hash"] == rec.hash
    old = resolve(storage, "pets@v1")
    assert old.uri == legacy_uri and old.classes == ["old"]
    with pytest.raises(DatasetError, match=r"v1 \(no hash\)"):
        resolve(storage, "pets@v7")


def test_legacy_v1_downloads_only_its_own_files(storage, tmp_path):
    old = _folder(tmp_path / "old")
    _legacy(storage, old)
    import_folder(storage, "pets", _folder(tmp_path / "new", colour=77, extra="new file"), **META)
    local, _, rec = download(storage, "pets@v1", tmp_path / "cache", lease=False)
    assert rec.version == 1
    got = {p.relative_to(local).as_posix() for p in local.rglob("*") if p.is_file() and not p.name.startswith(".")}
    assert got == {p.relative_to(old).as_posix() for p in old.rglob("*") if p.is_file()}
    local2, _, rec2 = download(storage, "pets", tmp_path / "cache", lease=False)
    assert rec2.version == 2
    assert (local2 / "notes.txt").read_text() == "new file"


def test_registered_uri_has_no_version(storage, tmp_path):
    rec = register(storage, DatasetRecord(name="cracks", uri="s3://acme/cracks"))
    assert rec.ref == "cracks"
    assert list_datasets(storage)["cracks"].versions == []


# ------------------------------------------------------------------------------------------ version_hash


def test_version_hash_ignores_created_and_extra_fields(tmp_path):
    m = build_manifest(_folder(tmp_path / "a"))
    assert version_hash(m) == version_hash({**m, "created": m["created"] + 1000})
    assert version_hash(m) == version_hash({**m, "created": 0, "extra": "x"})
    sizes_changed = {"files": {k: {**v, "size": 0} for k, v in m["files"].items()}}
    assert version_hash(m) == version_hash(sizes_changed)  # only paths and sums count


def test_version_hash_changes_with_bytes_and_paths(tmp_path):
    m = build_manifest(_folder(tmp_path / "a"))
    files = m["files"]
    renamed = {"files": {("x/" + k): v for k, v in files.items()}}
    assert version_hash(m) != version_hash(renamed)
    first = next(iter(files))
    changed = {"files": {**files, first: {**files[first], "sha256": "0" * 64}}}
    assert version_hash(m) != version_hash(changed)
    assert version_hash(m) == version_hash({"files": dict(reversed(list(files.items())))})  # order-free


def test_version_hash_of_two_builds_is_equal(tmp_path):
    a = build_manifest(_folder(tmp_path / "a"))
    b = build_manifest(_folder(tmp_path / "b"))
    assert version_hash(a) == version_hash(b)


# ----------------------------------------------------------------------------------- TrainSpec, cache


@pytest.mark.parametrize("ref", ["pets", "pets@v2", "pets@v1", "pets@3fa9c1", "pets@3fa9", "my.data_set-1@v12",
                                 "pets@" + "a" * 64, "s3://bucket/prefix", "file:///data/pets"])
def test_trainspec_accepts_dataset_refs(ref):
    assert TrainSpec(model="yolo11n", dataset=ref).dataset == ref


@pytest.mark.parametrize("ref", ["pets@x y", "pets@", "pets@v", "pets@3fa", "pets@latest", "pets@V2", "pets@3FA9C1",
                                 "@v1", "pets@v1@v2", "pets@v1234567", "pets@" + "a" * 65])
def test_trainspec_rejects_bad_dataset_refs(ref):
    with pytest.raises(ValidationError, match="pinned to a version"):
        TrainSpec(model="yolo11n", dataset=ref)


def _info(uri: str | None) -> VersionInfo:
    return VersionInfo(key="k", path=Path("/c/k"), uri=uri, files=1, bytes=1, exclusive_bytes=1, last_used=0.0)


@pytest.mark.parametrize(("uri", "name"), [
    ("file:///home/u/.vtp/storage/datasets/pets/3fa9c1d2e4b5", "pets"),
    ("file:///home/u/.vtp/storage/datasets/pets/3fa9c1d2e4b5/", "pets"),
    ("s3://bucket/vtp/datasets/my-data/0123456789ab", "my-data"),
    ("file:///home/u/.vtp/storage/datasets/pets", "pets"),  # a legacy version
    ("s3://acme/cracks", "cracks"),  # registered where it is
    ("s3://acme/datasets/x/notahash", "notahash"),
    (None, "?"),
])
def test_versioninfo_dataset_name(uri, name):
    assert _info(uri).dataset == name
    assert _info(uri).to_dict()["dataset"] == name


def test_versioninfo_dataset_of_an_imported_version(storage, tmp_path):
    rec = import_folder(storage, "pets", _folder(tmp_path / "one"), **META)
    assert _info(rec.uri).dataset == "pets"


def test_a_runs_summary_as_spec_pins_its_dataset_version():
    from cli.main import spec_of_summary

    summary = {"run_id": "abc", "spec": {"model": "resnet18", "dataset": "pets", "epochs": 3},
               "dataset": {"name": "pets", "version": 1, "hash": "3fa9c1d2e4b5", "ref": "pets@v1"}}
    assert spec_of_summary(summary) == {"model": "resnet18", "dataset": "pets@v1", "epochs": 3}
    assert summary["spec"]["dataset"] == "pets"  # the summary itself is not changed
    plain = {"model": "yolo11n", "dataset": "pets"}
    assert spec_of_summary(plain) is plain
