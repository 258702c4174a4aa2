"""Dataset cache eviction (tasks/cache.py): the VTP_CACHE_MAX_GB cap after downloads, LRU order,
leases of live processes, blobs shared by versions counted once, and `vtp cache stats/prune`.

Everything is real: datasets imported into a file:// storage under tmp_path, downloads that hard-link
blobs, and child processes whose pids hold leases."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.main import app
from core.settings import get_settings
from tasks import cache, dataset_store
from tasks.storage import Storage

FILE_BYTES = 64 * 1024


@pytest.fixture
def storage(tmp_path, monkeypatch):
    monkeypatch.setenv("VTP_STORAGE_URL", (tmp_path / "storage").as_uri())
    monkeypatch.setenv("VTP_CACHE_MAX_GB", "0")
    return Storage(settings=get_settings())


def with_cap(storage: Storage, max_bytes: int) -> Storage:
    """The same storage, with VTP_CACHE_MAX_GB set to ``max_bytes`` bytes."""
    return Storage(settings=storage.settings.model_copy(update={"cache_max_gb": max_bytes / cache.GB}))


def make_dataset(storage: Storage, tmp_path: Path, name: str, files: dict[str, bytes] | None = None,
                 n: int = 3) -> None:
    src = tmp_path / "src" / name
    files = files or {f"images/{name}-{i}.bin": os.urandom(FILE_BYTES) for i in range(n)}
    for rel, data in files.items():
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_bytes(data)
    dataset_store.import_folder(storage, name, src)


def fetch(storage: Storage, name: str, *, keep_lease: bool = False) -> Path:
    """Download ``name``; the lease this (long-lived) test process takes is released unless kept."""
    path, _, _ = dataset_store.download(storage, name, storage.settings.cache_root)
    assert (path / cache.COMPLETE).exists()
    if not keep_lease:
        assert cache.release(path)
    return path


def cached(storage: Storage) -> set[str]:
    return {v.dataset for v in cache.usage(storage.settings.cache_root).versions}


def disk_usage_by_inode(root: Path) -> int:
    """Reference: bytes on disk of blobs/ and datasets/, every inode once."""
    seen: dict[tuple[int, int], int] = {}
    for sub in ("blobs", "datasets"):
        for p in (root / sub).rglob("*"):
            st = p.lstat()
            if not p.is_dir():
                seen[(st.st_dev, st.st_ino)] = st.st_blocks * 512
    return sum(seen.values())


def set_last_used(path: Path, when: float) -> None:
    os.utime(path / cache.LAST_USED, (when, when))


@pytest.fixture
def child():
    """A live process of our own whose pid can hold a lease; killed (and reaped) at the end."""
    procs = []

    def start() -> subprocess.Popen:
        p = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        procs.append(p)
        return p

    yield start
    for p in procs:
        p.kill()
        p.wait()


def test_default_cap_is_set():
    assert get_settings().cache_max_gb == 20.0
    assert cache.gb_to_bytes(0) == 0 and cache.gb_to_bytes(1.5) == 1_500_000_000


def test_cap_respected_after_downloads_in_lru_order(storage, tmp_path):
    for name in "abcd":
        make_dataset(storage, tmp_path, name)
    root = storage.settings.cache_root
    a = fetch(storage, "a")
    one = cache.usage(root).bytes
    assert one >= 3 * FILE_BYTES
    capped = with_cap(storage, int(2.5 * one))  # room for two versions, not three

    b = fetch(capped, "b")
    assert cached(capped) == {"a", "b"}
    now = time.time()
    set_last_used(a, now - 100)
    set_last_used(b, now - 50)
    fetch(capped, "a")  # a cache hit makes a the most recently used
    assert cache.last_used(a) > cache.last_used(b)

    fetch(capped, "c")  # over the cap: b, the least recently used, goes
    assert cached(capped) == {"a", "c"}
    assert not b.exists() and not list((root / "datasets").glob(".trash-*"))
    u = cache.usage(root)
    assert u.bytes <= capped.settings.cache_max_gb * cache.GB
    assert u.bytes == disk_usage_by_inode(root)
    # b's blobs went with it (no other version linked them); every blob left is linked by a version
    assert all(p.stat().st_nlink >= 2 for p in (root / "blobs").iterdir())
    assert len(list((root / "blobs").iterdir())) == 6

    c = cache.usage(root).versions[-1].path
    set_last_used(c, time.time() + 10)  # now a is the older of the two
    fetch(capped, "d")
    assert cached(capped) == {"c", "d"}
    assert cache.usage(root).bytes <= capped.settings.cache_max_gb * cache.GB

    # an evicted version downloads again, its bytes transferred anew
    _, stats, _ = dataset_store.download(capped, "b", root, lease=False)
    assert not stats.cache_hit and stats.bytes_transferred == 3 * FILE_BYTES


def test_leased_version_is_kept_over_the_cap_until_its_process_dies(storage, tmp_path, child):
    for name in "ab":
        make_dataset(storage, tmp_path, name)
    root = storage.settings.cache_root
    a = fetch(storage, "a")
    run = child()
    lease = cache.take_lease(a, pid=run.pid)
    assert cache.read_lease(lease).live

    tiny = with_cap(storage, 1)
    b, _, _ = dataset_store.download(tiny, "b", root)  # leased by this process while it holds it
    assert cached(storage) == {"a", "b"}
    report = cache.prune(root, 1)
    assert report.evicted == [] and {v.dataset for v in report.kept_leased} == {"a", "b"}
    assert report.over_cap
    assert [v.leased_by for v in cache.usage(root).versions if v.dataset == "a"] == [[run.pid]]

    cache.release(b)
    assert [v.dataset for v in cache.prune(root, 1).evicted] == ["b"]
    assert cached(storage) == {"a"}

    run.kill()
    run.wait()
    assert not cache.read_lease(lease).live
    report = cache.prune(root, 1)
    assert [v.dataset for v in report.evicted] == ["a"]
    assert cached(storage) == set() and list((root / "blobs").iterdir()) == []


def test_stale_leases_are_cleaned_and_a_reused_pid_does_not_count(storage, tmp_path, child):
    make_dataset(storage, tmp_path, "a")
    root = storage.settings.cache_root
    a = fetch(storage, "a")
    dead = child()
    dead.kill()
    dead.wait()
    stale = cache.take_lease(a, pid=dead.pid)
    # a live pid whose recorded start time is another process's: the pid was reused
    alive = child()
    reused = cache.take_lease(a, pid=alive.pid)
    data = json.loads(reused.read_text())
    reused.write_text(json.dumps({**data, "pid_started": (data["pid_started"] or 0) - 3600}))
    assert cache.usage(root).versions[0].leased_by == []
    assert not stale.exists() and not reused.exists()


def test_blobs_shared_by_versions_are_counted_once(storage, tmp_path):
    shared = {f"images/s{i}.bin": os.urandom(FILE_BYTES) for i in range(4)}
    make_dataset(storage, tmp_path, "x", files=shared)
    make_dataset(storage, tmp_path, "y", files={**shared, "images/extra.bin": os.urandom(FILE_BYTES)})
    root = storage.settings.cache_root
    x = fetch(storage, "x")
    y = fetch(storage, "y", keep_lease=True)
    u = cache.usage(root)
    by_name = {v.dataset: v for v in u.versions}
    assert by_name["x"].files == 4 and by_name["y"].files == 5
    assert u.bytes == disk_usage_by_inode(root)
    assert u.bytes < by_name["x"].bytes + by_name["y"].bytes  # the four shared files count once
    assert u.blob_bytes <= u.bytes and u.blobs == 5
    assert by_name["x"].exclusive_bytes < FILE_BYTES  # x has no file of its own: evicting it frees ~nothing

    report = cache.prune(root, evict_all=True)  # y stays: this process leases it
    assert [v.dataset for v in report.evicted] == ["x"] and not x.exists()
    assert len(list((root / "blobs").iterdir())) == 5  # y still links every blob
    assert all((y / rel).read_bytes() == data for rel, data in shared.items())

    cache.release(y)
    cache.prune(root, evict_all=True)
    assert list((root / "blobs").iterdir()) == [] and cache.usage(root).bytes < FILE_BYTES


def test_staging_folders_in_progress_are_kept_abandoned_ones_removed(storage, tmp_path, child):
    root = storage.settings.cache_root
    datasets = root / "datasets"
    young = datasets / ("0" * 24 + ".young")  # no lease yet, just made: a download starting
    leased = datasets / ("1" * 24 + ".leased")
    abandoned = datasets / ("2" * 24 + ".dead")
    for folder in (young, leased, abandoned):
        folder.mkdir(parents=True)
        (folder / "f.bin").write_bytes(os.urandom(FILE_BYTES))
    run = child()
    cache.take_lease(leased, pid=run.pid)
    dead = child()
    cache.take_lease(abandoned, pid=dead.pid)
    dead.kill()
    dead.wait()
    report = cache.prune(root, evict_all=True)
    assert report.removed_leftovers == 1
    assert young.exists() and leased.exists() and not abandoned.exists()
    assert not list(datasets.glob(".trash-*"))


def test_download_recovers_a_half_evicted_version_and_survives_eviction_errors(storage, tmp_path, monkeypatch,
                                                                                   caplog):
    make_dataset(storage, tmp_path, "a")
    root = storage.settings.cache_root
    a = fetch(storage, "a")
    (a / cache.COMPLETE).unlink()  # an eviction that crashed after removing the marker
    again = fetch(storage, "a")
    assert again == a and (a / cache.COMPLETE).exists()
    assert len(list(a.rglob("*.bin"))) == 3

    def broken(*args, **kwargs):
        raise OSError("disk on fire")

    monkeypatch.setattr(cache, "enforce_cap", broken)
    with caplog.at_level(logging.WARNING, logger="vtp"):
        path, stats, _ = dataset_store.download(with_cap(storage, 1), "a", root)
    assert stats.cache_hit and (path / cache.COMPLETE).exists()
    assert "could not evict" in caplog.text and "disk on fire" in caplog.text


def test_reserved_cache_names_in_a_dataset_are_refused(storage, tmp_path):
    from core.errors import DatasetError

    make_dataset(storage, tmp_path, "bad", files={".vtp-leases/x": b"1", "images/a.bin": b"2"})
    with pytest.raises(DatasetError, match="reserved"):
        dataset_store.download(storage, "bad", storage.settings.cache_root)


def test_cli_cache_stats_and_prune(storage, tmp_path, child, monkeypatch):
    for name in "abc":
        make_dataset(storage, tmp_path, name)
    root = storage.settings.cache_root
    fetch(storage, "a")
    b = fetch(storage, "b")
    fetch(storage, "c")
    run = child()
    cache.take_lease(b, pid=run.pid)
    runner = CliRunner()

    out = runner.invoke(app, ["cache", "stats", "--json"])
    assert out.exit_code == 0, out.output
    data = json.loads(out.output)
    assert data["max_bytes"] == 0 and data["bytes"] == disk_usage_by_inode(root)
    assert {v["dataset"]: v["leased_by"] for v in data["versions"]} == {"a": [], "b": [run.pid], "c": []}

    out = runner.invoke(app, ["cache", "stats"])
    assert out.exit_code == 0, out.output
    assert "3 versions, 1 in use" in out.output and "cap none" in out.output
    assert f"pid {run.pid}" in out.output and b.name in out.output

    out = runner.invoke(app, ["cache", "prune"])  # VTP_CACHE_MAX_GB=0: nothing to evict
    assert out.exit_code == 0, out.output
    assert "no cap set" in out.output and cached(storage) == {"a", "b", "c"}

    monkeypatch.setenv("VTP_CACHE_MAX_GB", "100")
    out = runner.invoke(app, ["cache", "stats"])
    assert "cap 100.0 GB" in out.output

    out = runner.invoke(app, ["cache", "prune", "--max-gb", "0.000000001"])  # 1 byte: all but the leased one
    assert out.exit_code == 0, out.output
    assert "evicted 2 versions" in out.output and "kept 1 version in use" in out.output
    assert "still above the cap" in out.output
    assert cached(storage) == {"b"}

    run.kill()
    run.wait()
    out = runner.invoke(app, ["cache", "prune", "--all", "--json"])
    assert out.exit_code == 0, out.output
    report = json.loads(out.output)
    assert [v["dataset"] for v in report["evicted"]] == ["b"] and report["bytes_after"] < report["bytes_before"]
    assert cached(storage) == set()

    out = runner.invoke(app, ["cache", "stats"])
    assert "0 versions" in out.output and "no dataset versions cached yet" in out.output

    out = runner.invoke(app, ["cache", "prune", "--max-gb", "-1"])
    assert out.exit_code != 0
