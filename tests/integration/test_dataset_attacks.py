"""Issue 13 findings 1, 2 and 5 (datasets) against the real stack: the pickle chain through an upload
and a training run, split lists that name another dataset's stored images, and a file:// URI of
the whole disk. Proof files must never appear; nothing outside a dataset is read or stored."""

from __future__ import annotations

import time
import zipfile
from pathlib import Path

import httpx
import pytest

from core.settings import get_settings
from tasks import dataset_store
from tasks.samples import make_sample
from tasks.storage import Storage
from tests.integration.test_flow import run_flow
from tests.unit.test_dataset_security import pickle_cache

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(1800)]


def _zip(folder: Path, archive: Path, extra: dict[str, bytes] | None = None) -> Path:
    with zipfile.ZipFile(archive, "w") as zf:
        for p in sorted(folder.rglob("*")):
            if p.is_file():
                zf.write(p, f"ds/{p.relative_to(folder).as_posix()}")
        for name, data in (extra or {}).items():
            zf.writestr(f"ds/{name}", data)
    return archive


def _upload(base: str, auth: dict, name: str, archive: Path) -> httpx.Response:
    return httpx.post(f"{base}/api/datasets", data={"name": name}, headers=auth, timeout=120,
                      files={"file": (archive.name, archive.read_bytes(), "application/octet-stream")})


def _caches(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*.cache")} if root.exists() else {}


def test_pickle_chain_and_escaping_lists_are_refused(stack_env, tmp_path):
    base = stack_env["API_URL"]
    auth = {"Authorization": f"Bearer {(stack_env['home'] / 'api_token').read_text().strip()}"}
    proof = tmp_path / "proof"
    settings = get_settings()
    storage = Storage(settings=settings)

    # 1. a YOLO zip holding pickle label caches: imported without them, and the report says so
    sample = make_sample("shapes-detect", tmp_path / "a", n_train=4, n_val=2, image_size=64)
    payload = pickle_cache(tmp_path / "p.cache", proof).read_bytes()
    first = _upload(base, auth, "attack-a", _zip(sample, tmp_path / "a.zip",
                                                 {"labels/train.cache": payload, "labels/val.cache": payload}))
    assert first.status_code == 201, first.text
    stored_a = next(p for p in (settings.home / "storage" / "datasets" / "attack-a").iterdir() if p.is_dir())
    assert _caches(stored_a) == {}
    assert {d["file"] for d in first.json()["report"]["dropped"]} == {"ds/labels/train.cache", "ds/labels/val.cache"}

    # 2. a second upload whose split lists name the first one's stored images: refused, not registered
    victim = sorted(str(p) for p in (stored_a / "images" / "train").glob("*.jpg"))
    other = make_sample("shapes-detect", tmp_path / "b", n_train=2, n_val=1, image_size=64)
    (other / "train.txt").write_text("".join(f"{p}\n" for p in victim))
    (other / "val.txt").write_text("../../../../../../../../etc/passwd\n/etc/shadow\n")
    (other / "data.yaml").write_text("path: .\ntrain: train.txt\nval: val.txt\nnames: [circle, square, triangle]\n")
    second = _upload(base, auth, "attack-b", _zip(other, tmp_path / "b.zip"))
    assert second.status_code == 422, second.text
    detail = second.text
    assert "outside the dataset folder" in detail and "Permission" not in detail and "cannot be read" not in detail
    assert "attack-b" not in dataset_store.list_datasets(storage)

    # 5. a file:// URI of the whole disk: refused before anything is listed
    started = time.monotonic()
    r = httpx.post(f"{base}/api/datasets", json={"name": "disk", "uri": "file:///."}, headers=auth, timeout=60)
    assert r.status_code == 422 and "VTP_DATA_ROOTS" in r.text and time.monotonic() - started < 10

    # the run: pickles planted in storage and in the shared dataset cache, where ultralytics would look
    pickle_cache(stored_a / "labels" / "train.cache", proof)
    local, _, _ = dataset_store.download(storage, "attack-a", settings.cache_root, lease=False)
    for split in ("train", "val"):
        pickle_cache(local / "labels" / f"{split}.cache", proof)
    planted = {"storage": _caches(stored_a), "cache": _caches(local)}
    state = run_flow({"model": "yolo11n", "dataset": "attack-a", "epochs": 1, "image_size": 64, "batch_size": 4,
                      "workers": 0, "pretrained": False, "overrides": {"plots": False}}, stack_env["PREFECT_API_URL"])
    assert state.is_completed(), state.message
    assert not proof.exists(), "a planted label cache was unpickled"
    assert {"storage": _caches(stored_a), "cache": _caches(local)} == planted, "ultralytics wrote next to the dataset"
