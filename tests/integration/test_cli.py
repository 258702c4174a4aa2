"""The commands a person types: `vtp up` (start, refuse a second one, Ctrl-C stops everything)
and `vtp datasets add` for folders, archives, COCO and storage URIs."""

from __future__ import annotations

import base64
import json
import os
import re
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import httpx
import psutil
import pytest

from tests.integration.conftest import free_port, vtp

pytestmark = pytest.mark.integration


def _basic(auth_string: str) -> dict[str, str]:
    """The header Prefect's server takes for PREFECT_SERVER_API_AUTH_STRING."""
    return {"Authorization": "Basic " + base64.b64encode(auth_string.encode()).decode()}


def _descendants(pid: int) -> list[psutil.Process]:
    return psutil.Process(pid).children(recursive=True)


@pytest.mark.slow
def test_vtp_up_starts_refuses_second_and_stops_cleanly(tmp_path, s3_endpoint):
    """`vtp up --storage s3://…` on moto's server (the session stack runs on file://): the missing
    bucket is created and the sample datasets are stored there."""
    bucket = f"up-{time.monotonic_ns()}"
    env = {**os.environ, "VTP_HOME": str(tmp_path / "home"), "VTP_PREFECT_PORT": str(free_port()),
           "VTP_API_PORT": str(free_port()), "VTP_UI_PORT": str(free_port()), "VTP_S3_ENDPOINT_URL": s3_endpoint}
    env.pop("VTP_STORAGE_URL", None)
    exe = Path(sys.executable).with_name("vtp")
    log = open(tmp_path / "up.log", "w")  # noqa: SIM115 - the child writes it until the end of the test
    proc = subprocess.Popen([str(exe), "up", "--storage", f"s3://{bucket}/stack"], env=env, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    api = f"http://127.0.0.1:{env['VTP_PREFECT_PORT']}/api"
    try:
        deadline = time.monotonic() + 180
        while "ready:" not in (tmp_path / "up.log").read_text():
            assert proc.poll() is None, (tmp_path / "up.log").read_text()
            assert time.monotonic() < deadline, "vtp up did not get ready in 180 s"
            time.sleep(0.5)
        text = (tmp_path / "up.log").read_text()
        assert "Prefect UI: http://127.0.0.1:" in text and "sample datasets registered: shapes-detect" in text
        assert f"storage:  s3://{bucket}/stack (bucket {bucket} created)" in text
        import boto3

        keys = [o["Key"] for o in boto3.client("s3", endpoint_url=s3_endpoint).list_objects_v2(
            Bucket=bucket, Prefix="stack/")["Contents"]]
        assert "stack/datasets/index.json" in keys and any(k.startswith("stack/datasets/shapes-detect/") for k in keys)
        assert not (tmp_path / "home" / "storage").exists()  # nothing went to the default folder
        # "ready" means every service answers: checked at once, no waiting (issue 14)
        assert httpx.get(f"{api}/health", timeout=5).status_code == 200
        assert httpx.get(f"http://127.0.0.1:{env['VTP_API_PORT']}/api/health", timeout=5).status_code == 200
        assert httpx.get(f"http://127.0.0.1:{env['VTP_UI_PORT']}/", timeout=5).status_code == 200
        # the Prefect server requires the auth string vtp up generated (issue 13)
        auth_file = tmp_path / "home" / "prefect_auth"
        assert oct(auth_file.stat().st_mode & 0o777) == "0o600" and str(auth_file) in text
        assert httpx.post(f"{api}/deployments/filter", json={}, timeout=5).status_code == 401
        names = httpx.post(f"{api}/deployments/filter", json={}, timeout=5,
                           headers=_basic(auth_file.read_text().strip())).json()
        assert {d["name"] for d in names} >= {"train-ultralytics", "train-timm"}

        second = subprocess.run([str(exe), "up"], env=env, capture_output=True, text=True, timeout=60)
        assert second.returncode == 1 and "already running" in second.stderr

        children = _descendants(proc.pid)
        assert len(children) >= 4  # the server, the launcher and a worker per pool at least
        proc.send_signal(signal.SIGINT)  # what Ctrl-C sends
        assert proc.wait(timeout=60) == 0
        said = (tmp_path / "up.log").read_text()
        assert "stopping the web app, the API, the workers and the Prefect server" in said
        assert re.search(r"stopped \(\d+\.\ds\)", said), said[-500:]
        gone, alive = psutil.wait_procs(children, timeout=10)
        assert alive == [], f"still running after Ctrl-C: {[p.cmdline() for p in alive]}"
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"{api}/health", timeout=2)
        assert not (tmp_path / "home" / "up.pid").exists()
        # this stack's Prefect server ran on SQLite (the zero-configuration default): its transactions
        # begin IMMEDIATE (cli/prefect_server.py), so no "database is locked" (issue 12, 14)
        server_log = (tmp_path / "home" / "logs" / "prefect-server.log").read_text(errors="replace")
        assert "database is locked" not in server_log, server_log[-3000:]
    finally:
        if proc.poll() is None:
            for child in _descendants(proc.pid):
                child.kill()
            proc.kill()


def _datasets(env) -> str:
    out = vtp("datasets", "list", env=env)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_datasets_add_folder_archive_coco_uri_and_refusals(tmp_path):
    from tasks.samples import make_sample

    env = {"VTP_HOME": str(tmp_path / "home")}
    det = make_sample("shapes-detect", tmp_path / "det", n_train=4, n_val=2)
    out = vtp("datasets", "add", "det", str(det), env=env)
    assert out.returncode == 0, out.stderr
    assert "det: detect, yolo" in out.stdout

    cls = make_sample("shapes-classify", tmp_path / "cls", n_train=4, n_val=3)
    archive = tmp_path / "cls.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for p in cls.rglob("*.jpg"):
            zf.write(p, f"flowers/{p.relative_to(cls).as_posix()}")
    out = vtp("datasets", "add", "flowers", str(archive), env=env)
    assert out.returncode == 0, out.stderr
    assert "flowers: classify, imagefolder" in out.stdout

    coco = _coco_from_yolo(det, tmp_path / "coco")
    out = vtp("datasets", "add", "cocoset", str(coco), env=env)
    assert out.returncode == 0, out.stderr
    assert "cocoset: detect, yolo" in out.stdout

    version = next(p for p in (tmp_path / "home" / "storage" / "datasets" / "det").iterdir() if p.is_dir())
    storage_uri = version.as_uri()  # an imported version's folder, registered where it is
    out = vtp("datasets", "add", "det-again", storage_uri, env=env)
    assert out.returncode == 0, out.stderr

    listed = _datasets(env)
    for name in ("det", "flowers", "cocoset", "det-again"):
        assert name in listed

    evil = tmp_path / "evil.zip"
    with zipfile.ZipFile(evil, "w") as zf:
        zf.writestr("../../escaped.txt", "x")
    out = vtp("datasets", "add", "evil", str(evil), env=env)
    assert out.returncode == 1 and "outside" in out.stderr and "Traceback" not in out.stderr
    assert not (tmp_path / "escaped.txt").exists()

    broken = make_sample("shapes-detect", tmp_path / "broken", n_train=4, n_val=2)
    bad_label = sorted((broken / "labels" / "train").glob("*.txt"))[0]
    bad_label.write_text("9 0.5 0.5 0.1 0.1\n")
    out = vtp("datasets", "add", "broken", str(broken), env=env)
    assert out.returncode == 1 and bad_label.name in out.stderr and "Traceback" not in out.stderr
    assert "broken" not in _datasets(env)

    out = vtp("datasets", "add", "nothing", str(tmp_path / "does-not-exist"), env=env)
    assert out.returncode == 1 and "does not exist" in out.stderr


def _coco_from_yolo(yolo: Path, dest: Path) -> Path:
    """A COCO instances dataset made from a YOLO sample (boxes only)."""
    import yaml
    from PIL import Image

    names = yaml.safe_load((yolo / "data.yaml").read_text())["names"]
    names = names if isinstance(names, dict) else dict(enumerate(names))
    (dest / "annotations").mkdir(parents=True)
    for split in ("train", "val"):
        images, anns = [], []
        (dest / "images" / split).mkdir(parents=True)
        for i, img in enumerate(sorted((yolo / "images" / split).glob("*.jpg")), start=1):
            w, h = Image.open(img).size
            (dest / "images" / split / img.name).write_bytes(img.read_bytes())
            images.append({"id": i, "file_name": img.name, "width": w, "height": h})
            for line in (yolo / "labels" / split / f"{img.stem}.txt").read_text().splitlines():
                c, cx, cy, bw, bh = map(float, line.split()[:5])
                anns.append({"id": len(anns) + 1, "image_id": i, "category_id": int(c) + 1, "iscrowd": 0,
                             "bbox": [(cx - bw / 2) * w, (cy - bh / 2) * h, bw * w, bh * h], "area": bw * w * bh * h})
        cats = [{"id": k + 1, "name": v} for k, v in names.items()]
        (dest / "annotations" / f"instances_{split}.json").write_text(
            json.dumps({"images": images, "annotations": anns, "categories": cats}))
    return dest


@pytest.mark.slow
def test_vtp_up_killed_hard_leaves_nothing_behind(tmp_path):
    """SIGKILL gives `vtp up` no chance to clean up; its children still go (PR_SET_PDEATHSIG)."""
    env = {**os.environ, "VTP_HOME": str(tmp_path / "home"), "VTP_PREFECT_PORT": str(free_port()),
           "VTP_API_PORT": str(free_port()), "VTP_UI_PORT": str(free_port())}
    exe = Path(sys.executable).with_name("vtp")
    log = open(tmp_path / "up.log", "w")  # noqa: SIM115 - the child writes it until the end of the test
    proc = subprocess.Popen([str(exe), "up"], env=env, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 180
    while "ready:" not in (tmp_path / "up.log").read_text():
        assert proc.poll() is None and time.monotonic() < deadline, (tmp_path / "up.log").read_text()
        time.sleep(0.5)
    children = _descendants(proc.pid)
    proc.kill()
    proc.wait(10)
    gone, alive = psutil.wait_procs(children, timeout=20)
    for p in alive:
        p.kill()
    assert alive == [], f"left running after SIGKILL: {[p.pid for p in alive]}"


def test_vtp_up_refuses_a_storage_it_cannot_use_before_starting_anything(tmp_path):
    """A scheme vtp does not read, or an S3 endpoint that does not answer: one message saying what to
    set, exit 1, and nothing started (no pid file, no Prefect server)."""
    env = {"VTP_HOME": str(tmp_path / "home"), "VTP_PREFECT_PORT": str(free_port()), "AWS_ACCESS_KEY_ID": "x",
           "AWS_SECRET_ACCESS_KEY": "y", "VTP_S3_ENDPOINT_URL": f"http://127.0.0.1:{free_port()}"}
    for storage, said in (("http://example.com/data", "uses the scheme 'http', which vtp does not read"),
                          ("s3://nowhere/stack", f"nothing answers at VTP_S3_ENDPOINT_URL={env['VTP_S3_ENDPOINT_URL']}")):
        out = vtp("up", "--storage", storage, env=env, timeout=60)  # said at once, not after the S3 client's retries
        assert out.returncode == 1 and said in out.stderr and "Traceback" not in out.stderr, out.stderr
        assert not (tmp_path / "home" / "up.pid").exists() and "Prefect" not in out.stdout


def test_storage_root_is_prepared_for_a_folder(tmp_path, monkeypatch):
    from tasks.storage import ensure_root

    monkeypatch.setenv("VTP_STORAGE_URL", (tmp_path / "deep" / "root").as_uri())
    assert ensure_root() == "ready" and (tmp_path / "deep" / "root").is_dir()
    assert list((tmp_path / "deep" / "root").iterdir()) == []  # the probe is gone
