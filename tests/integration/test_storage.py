"""Storage and the dataset cache on both backends: a local folder and S3 (moto's server)."""

from __future__ import annotations

import pytest

from core.settings import get_settings
from tasks import dataset_store
from tasks.dataset_ingest import ingest_sample
from tasks.storage import MANIFEST, Storage, upload_folder

pytestmark = pytest.mark.integration


@pytest.fixture(params=["local", "s3"])
def storage(request):
    if request.param == "s3":
        request.getfixturevalue("s3_storage")
    return Storage()


def test_upload_manifest_last_and_checksums(storage, tmp_path):
    out = tmp_path / "out"
    (out / "checkpoints").mkdir(parents=True)
    (out / "checkpoints" / "best.pt").write_bytes(b"w" * 1000)
    (out / "artifacts").mkdir()
    (out / "artifacts" / "results.csv").write_text("epoch,loss\n1,0.5\n")
    result = upload_folder(storage, out, "runs", "r1", run_id="r1")
    manifest = storage.read_json("runs", "r1", MANIFEST)
    assert result.files == 2 and result.bytes == 1000 + len("epoch,loss\n1,0.5\n")
    assert set(manifest["files"]) == {"checkpoints/best.pt", "artifacts/results.csv"}
    assert manifest["files"]["checkpoints/best.pt"]["size"] == 1000
    assert len(manifest["files"]["checkpoints/best.pt"]["sha256"]) == 64
    # re-uploading first removes the manifest, so a half re-upload never looks complete
    (out / "checkpoints" / "best.pt").write_bytes(b"v" * 10)
    upload_folder(storage, out, "runs", "r1")
    assert storage.read_json("runs", "r1", MANIFEST)["files"]["checkpoints/best.pt"]["size"] == 10


def test_second_download_transfers_zero_bytes(storage):
    rec = ingest_sample("shapes-detect", "cached", n_train=6, n_val=2, storage=storage)
    assert rec.task == "detect" and rec.counts == {"train": 6, "val": 2}
    cache = get_settings().cache_root
    first, stats1, _ = dataset_store.download(storage, "cached", cache)
    assert stats1.bytes_transferred > 0 and stats1.files_transferred == stats1.files_total
    second, stats2, _ = dataset_store.download(storage, "cached", cache)
    assert second == first
    assert stats2.cache_hit and stats2.bytes_transferred == 0 and stats2.files_transferred == 0
    assert (first / "data.yaml").exists()


def test_changed_dataset_reuses_unchanged_files(storage, tmp_path):
    from tasks.samples import make_sample

    root = make_sample("shapes-classify", tmp_path / "ds", n_train=6, n_val=3)
    dataset_store.import_folder(storage, "cls", root, task="classify")
    cache = get_settings().cache_root
    dataset_store.download(storage, "cls", cache)
    changed = next((root / "train").rglob("*.jpg"))
    changed.write_bytes(changed.read_bytes() + b"\0")  # still a valid JPEG with a trailing byte
    dataset_store.import_folder(storage, "cls", root, task="classify")
    _, stats, _ = dataset_store.download(storage, "cls", cache)
    assert stats.files_transferred == 1
    assert stats.files_from_cache == stats.files_total - 1


def test_unregistered_uri_without_manifest(storage, tmp_path):
    """A storage URI registered as-is (no vtp manifest) is listed, downloaded and cached too."""
    from tasks.samples import make_sample

    root = make_sample("shapes-classify", tmp_path / "ds", n_train=3, n_val=3)
    images = list(root.rglob("*.jpg"))
    for p in images:
        storage.put_file(p, "external", p.relative_to(root).as_posix())
    uri = storage.uri("external")
    cache = get_settings().cache_root
    local, stats, rec = dataset_store.download(storage, uri, cache)
    assert stats.files_total == len(images) and stats.bytes_transferred > 0
    assert sorted(p.name for p in (local / "train").iterdir()) == ["circle", "square", "triangle"]
    _, again, _ = dataset_store.download(storage, uri, cache)
    assert again.bytes_transferred == 0


def test_unknown_dataset_lists_registered(storage):
    from core.errors import DatasetError

    ingest_sample("shapes-classify", "flowers", n_train=3, n_val=3, storage=storage)
    with pytest.raises(DatasetError, match="'flowr' is not registered. Did you mean 'flowers'"):
        dataset_store.resolve(storage, "flowr")


def test_refuses_other_schemes():
    from core.errors import StorageError

    for uri in ("http://169.254.169.254/latest/meta-data", "gs://bucket/x", "ftp://host/x"):
        with pytest.raises(StorageError, match="scheme"):
            Storage(uri)
