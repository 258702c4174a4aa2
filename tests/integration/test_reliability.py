"""Faults, each ending with the data intact: a flaky S3 endpoint, the API gone for 20 s during a
run, and the zombie-run automation `vtp up` creates."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import httpx
import pytest

from tasks.storage import MANIFEST, Storage, sha256_file
from tests.integration.conftest import free_port
from tests.integration.faults import FaultyProxy
from tests.integration.test_flow import run_flow

pytestmark = [pytest.mark.integration, pytest.mark.slow]
SPEC = {"model": "yolo11n", "dataset": "faulty", "epochs": 2, "image_size": 64, "batch_size": 8, "workers": 0,
        "pretrained": False}


def test_flaky_s3_run_completes_and_manifest_matches(stack, s3_endpoint, monkeypatch, tmp_path):
    """30% of S3 requests answer 503 and 5% stall: the run still completes, and every file its
    manifest lists is in S3, whole (sizes and sha256 match)."""
    from tasks.dataset_ingest import ingest_sample

    with FaultyProxy(s3_endpoint, fail=0.3, stall=0.05) as proxy:
        monkeypatch.setenv("VTP_STORAGE_URL", f"s3://vtp/faulty{time.monotonic_ns()}")
        monkeypatch.setenv("VTP_S3_ENDPOINT_URL", proxy.url)
        ingest_sample("shapes-detect", "faulty", n_train=8, n_val=4)
        state = run_flow(SPEC, stack["PREFECT_API_URL"])
        assert state.is_completed(), state.message
        summary = state.result()
        assert proxy.counts["failed"] > 10, proxy.counts  # the faults really happened
    monkeypatch.setenv("VTP_S3_ENDPOINT_URL", s3_endpoint)  # check what landed, without the proxy
    storage = Storage()
    manifest = storage.read_json("runs", summary["run_id"], MANIFEST)
    for rel, entry in manifest["files"].items():
        local = tmp_path / "check" / rel
        local.parent.mkdir(parents=True, exist_ok=True)
        storage.fs.get_file(storage.path("runs", summary["run_id"], rel), str(local))
        assert local.stat().st_size == entry["size"] and sha256_file(local) == entry["sha256"], rel


def _start_api(env: dict, port: int) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-m", "cli.main", "api", "--port", str(port)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(150):
        try:
            httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=0.5)
            return proc
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise AssertionError("the API did not start")


def test_api_down_for_20s_loses_no_metric(stack, vtp_home):
    """The API dies after the first epoch and comes back 20 s later: the trainer buffers its
    callbacks and delivers every epoch once the API is back; none twice."""
    from api import crud
    from api.db import make_engine, migrate, session_factory
    from api.security import mint_run_token
    from core.settings import get_settings
    from tasks.dataset_ingest import ingest_sample

    ingest_sample("shapes-detect", "faulty", n_train=8, n_val=4)
    settings = get_settings()
    migrate(settings.database_url)
    sessions = session_factory(make_engine(settings.database_url))
    spec = {**SPEC, "epochs": 4}
    with sessions() as s:
        run_id = crud.create_run(s, spec=spec).id
    port = free_port()
    env = {**os.environ, "VTP_API_PORT": str(port)}
    api = _start_api(env, port)
    outcome = {}

    def train():
        from prefect.settings import PREFECT_API_URL, temporary_settings

        from flows.train import train_flow

        with temporary_settings(updates={PREFECT_API_URL: stack["PREFECT_API_URL"]}):
            outcome["state"] = train_flow(spec, run_id=run_id, api_url=f"http://127.0.0.1:{port}",
                                          run_token=mint_run_token(run_id, settings), return_state=True)

    thread = threading.Thread(target=train)
    thread.start()
    try:
        deadline = time.monotonic() + 120
        while True:  # wait for the first epoch to arrive, then take the API away
            with sessions() as s:
                if crud.get_run(s, run_id=run_id).epochs_done >= 1:
                    break
            assert time.monotonic() < deadline and thread.is_alive(), "no epoch reached the API"
            time.sleep(0.2)
        api.send_signal(signal.SIGKILL)
        api.wait(10)
        time.sleep(20)
        with sessions() as s:
            assert crud.get_run(s, run_id=run_id).state == "running", "nothing is delivered while the API is away"
        api = _start_api(env, port)
        thread.join(120)
        assert not thread.is_alive()
    finally:
        api.kill()
    assert outcome["state"].is_completed(), outcome["state"].message
    with sessions() as s:
        run = crud.get_run(s, run_id=run_id)
        points = crud.list_metrics(s, run_id=run_id)
    assert run.state == "completed" and run.checkpoint_uri
    assert sorted({p.epoch for p in points}) == [1, 2, 3, 4]
    assert len(points) == len({(p.epoch, p.name) for p in points})


def test_vtp_up_creates_the_zombie_automation(stack_env):
    from prefect.automations import Automation

    from cli.prefect_setup import ZOMBIE_AUTOMATION, prefect_api

    with prefect_api():
        automation = Automation.read(name=ZOMBIE_AUTOMATION)
    assert automation.enabled
    assert automation.actions[0].state.value == "CRASHED"
