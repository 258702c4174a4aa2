"""The training flow for real: a Prefect server, process workers, generated data, tiny models.

Through the deployment (`vtp up` + `vtp train`) for ultralytics and timm, then in-process python
invocation (`train_flow(spec)`) for the other ultralytics tasks and for S3 storage."""

from __future__ import annotations

import contextlib
import json
import os
import re
from pathlib import Path
from urllib.parse import urlparse

import pytest

from core.errors import DatasetError
from core.settings import get_settings
from tasks.storage import MANIFEST, Storage
from tests.integration.conftest import vtp
from trainers.ultralytics.env import import_ultralytics

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@contextlib.contextmanager
def prefect_at(api_url: str):
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: api_url}):
        yield


def run_flow(spec: dict, api_url: str):
    """`train_flow(spec)` from python, against the real server; returns the final state."""
    from flows.train import train_flow

    with prefect_at(api_url):
        return train_flow(spec, return_state=True)


def local_path(uri: str) -> Path:
    return Path(urlparse(uri).path)


def an_image(dataset: str) -> Path:
    return next((get_settings().home / "storage" / "datasets" / dataset).rglob("*.jpg"))


# -- through the deployment and a worker, with the CLI a person uses ---------------------------------

def test_cli_yolo_detect_through_deployment(stack_env):
    assert vtp("datasets", "sample", "shapes-detect").returncode == 0
    out = vtp("train", "model=yolo11n", "dataset=shapes-detect", "epochs=2", "image_size=128", "batch_size=8")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "[running]" in out.stdout and "epoch 1/2" in out.stdout and "epoch 2/2" in out.stdout
    uri = re.search(r"checkpoint: (\S+)", out.stdout).group(1)
    run_id = uri.split("/runs/")[1].split("/")[0]
    storage = Storage()
    manifest = storage.read_json("runs", run_id, MANIFEST)
    assert {"checkpoints/best.pt", "checkpoints/last.pt", "artifacts/results.csv", "summary.json"} <= set(manifest["files"])
    assert not (get_settings().work_root / run_id).exists(), "the workdir is removed after the run"

    YOLO = import_ultralytics().YOLO

    results = YOLO(str(local_path(uri))).predict(str(an_image("shapes-detect")), imgsz=128, verbose=False)
    assert len(results) == 1 and results[0].boxes is not None

    # with the stack up `vtp train` went through the API: the run is in the ledger, with its name
    assert "through the vtp API" in out.stdout, out.stdout
    listed = [json.loads(line) for line in vtp("runs", "--json").stdout.splitlines()]
    mine = next(r for r in listed if r["run_id"] == run_id)
    assert mine["state"] == "completed" and mine["name"].startswith("yolo11n-shapes-detect-"), mine
    table = vtp("runs").stdout.splitlines()
    assert table[0].split()[:4] == ["RUN", "NAME", "STATE", "MODEL"], table[:2]  # a header row (issue 14)
    row = next(ln for ln in table if ln.startswith(run_id[:8]))
    assert mine["name"] in row and "mAP50-95" in row and "metrics/" not in row, row  # the metric, readable

    # what the Prefect UI shows: the report and progress artifacts, and the trainer's own log lines
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterFlowRunId,
        LogFilter,
        LogFilterFlowRunId,
    )

    from core.prefect_api import prefect_client

    flow_run_id = mine["flow_run_id"]  # through the API, vtp's run id and Prefect's flow-run id differ
    with prefect_client() as client:
        assert client.read_flow_run(flow_run_id).name == mine["name"]  # the Prefect UI shows the same name
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id])))
        logs = client.read_logs(LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])), limit=200)
    report = next(a for a in artifacts if a.key == "train-report")
    assert report.type == "markdown" and uri in report.data and "metrics/mAP50-95(B)" in report.data
    progress = next(a for a in artifacts if a.type == "progress")
    assert float(progress.data) == 100.0
    messages = [log.message for log in logs]
    assert any(m.startswith("Optimizer:") or "Ultralytics" in m for m in messages), "trainer lines reach Prefect"


def test_cli_timm_resnet18_through_deployment(stack_env):
    assert vtp("datasets", "sample", "shapes-classify").returncode == 0
    out = vtp("train", "model=resnet18", "dataset=shapes-classify", "epochs=2", "image_size=64", "batch_size=8")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "epoch 2/2" in out.stdout and "metrics/accuracy_top1" in out.stdout
    uri = re.search(r"checkpoint: (\S+)", out.stdout).group(1)

    from trainers.timm import predict

    top = predict(local_path(uri), [an_image("shapes-classify")], top_k=3)
    assert len(top[0]) == 3 and {c for c, _ in top[0]} == {"circle", "square", "triangle"}
    assert abs(sum(p for _, p in top[0]) - 1.0) < 1e-3


def test_cli_refuses_bad_spec_before_submitting(stack_env):
    for args, expected in [
        (["model=yolo11q", "dataset=shapes-detect"], "Did you mean"),
        (["model=yolo11s-seg", "task=detect", "dataset=shapes-detect"], "segment model"),
        (["model=yolo11n", "dataset=no-such-set"], "'no-such-set' is not registered"),
        (["model=yolo11n", "dataset=shapes-detect", "epochs=0"], "epochs=0"),
    ]:
        out = vtp("train", *args)
        assert out.returncode == 1, out.stdout
        assert expected in out.stderr and "Traceback" not in out.stderr + out.stdout
        assert "submitted" not in out.stdout


# -- python invocation against the same server -------------------------------------------------------

@pytest.mark.parametrize(("sample", "model"), [
    ("shapes-segment", "yolo11n-seg"),
    ("shapes-classify", "yolo11n-cls"),
    ("shapes-pose", "yolo11n-pose"),
    ("shapes-obb", "yolo11n-obb"),
])
def test_python_invocation_other_tasks(stack, sample, model, tmp_path):
    from tasks.dataset_ingest import ingest_sample
    from tests.integration.reports import assert_report

    ingest_sample(sample, n_train=8, n_val=4)
    state = run_flow({"model": model, "dataset": sample, "epochs": 1, "image_size": 64, "batch_size": 8,
                      "workers": 0}, stack["PREFECT_API_URL"])
    assert state.is_completed(), state.message
    summary = state.result()
    assert summary["epochs_completed"] == 1 and summary["spec"]["model"] == model
    assert summary["main_metric"]["name"] in summary["metrics"]
    assert_report(summary, stack["PREFECT_API_URL"])
    path = local_path(summary["checkpoint_uri"])
    YOLO = import_ultralytics().YOLO

    assert YOLO(str(path)).predict(str(an_image(sample)), imgsz=64, verbose=False)


def test_s3_storage_and_zero_byte_second_run(stack, s3_storage):
    from tasks.dataset_ingest import ingest_sample

    ingest_sample("shapes-detect", "s3-shapes", n_train=8, n_val=4)
    spec = {"model": "yolo11n", "dataset": "s3-shapes", "epochs": 1, "image_size": 64, "batch_size": 8, "workers": 0}
    first = run_flow(spec, stack["PREFECT_API_URL"])
    assert first.is_completed(), first.message
    s1 = first.result()
    assert s1["checkpoint_uri"].startswith(s3_storage) and s1["dataset_cache"]["bytes_transferred"] > 0
    storage = Storage()
    run_id = s1["run_id"]
    assert storage.exists("runs", run_id, MANIFEST) and storage.exists("runs", run_id, "checkpoints/best.pt")
    second = run_flow(spec, stack["PREFECT_API_URL"])
    s2 = second.result()
    assert s2["dataset_cache"]["bytes_transferred"] == 0 and s2["dataset_cache"]["cache_hit"]
    assert s2["dataset_cache"]["files_from_cache"] == s1["dataset_cache"]["files_total"]


# -- bad data: a clear error, nothing uploaded, the workdir removed ----------------------------------

def _broken_dataset(tmp_path: Path, breakage: str) -> str:
    """A YOLO sample broken on purpose and put in storage *without* ingest (which would refuse it)."""
    from tasks.samples import make_sample

    root = make_sample("shapes-detect", tmp_path / "ds", n_train=4, n_val=2)
    label = next((root / "labels" / "train").glob("*.txt"))
    if breakage == "corrupt-image":
        next((root / "images" / "train").glob("*.jpg")).write_bytes(b"\xff\xd8 definitely not a jpeg")
    elif breakage == "class-id":
        label.write_text("7 0.5 0.5 0.2 0.2\n")
    elif breakage == "empty-split":
        for p in (root / "images" / "val").iterdir():
            p.unlink()
    storage = Storage()
    for p in root.rglob("*"):
        if p.is_file():
            storage.put_file(p, "raw", breakage, p.relative_to(root).as_posix())
    return storage.uri("raw", breakage)


@pytest.mark.parametrize(("breakage", "expected"), [
    ("corrupt-image", r"images/train/\S+\.jpg"),
    ("class-id", r"labels/train/\S+\.txt:1.*class"),
    ("empty-split", r"val"),
])
def test_bad_dataset_fails_cleanly(stack, tmp_path, breakage, expected):
    uri = _broken_dataset(tmp_path, breakage)
    state = run_flow({"model": "yolo11n", "dataset": uri, "epochs": 1, "image_size": 64}, stack["PREFECT_API_URL"])
    assert state.is_failed()
    with pytest.raises(DatasetError) as err:
        state.result()
    assert re.search(expected, str(err.value)), str(err.value)
    assert Storage().listing("runs") == {}, "nothing is uploaded for a failed run"
    assert not any(get_settings().work_root.glob("*")), "the workdir is removed"


def test_missing_dataset_fails_cleanly(stack):
    state = run_flow({"model": "yolo11n", "dataset": "never-registered", "epochs": 1}, stack["PREFECT_API_URL"])
    assert state.is_failed()
    with pytest.raises(DatasetError, match="'never-registered' is not registered"):
        state.result()
    assert Storage().listing("runs") == {}
    assert not any(get_settings().work_root.glob("*"))


def test_cancel_stops_run_and_removes_workdir(stack_env):
    """Cancelling in Prefect reaches the training process through the warm launcher: the run ends
    Cancelled within seconds, its workdir is removed and nothing is published as complete."""
    import time

    from prefect.client.schemas.objects import StateType
    from prefect.states import Cancelling

    from cli.submit import submit
    from core.prefect_api import prefect_client
    from core.spec import parse_spec

    assert vtp("datasets", "sample", "shapes-detect").returncode == 0
    spec = parse_spec({"model": "yolo11n", "dataset": "shapes-detect", "epochs": 200, "image_size": 64,
                       "batch_size": 8, "pretrained": False})
    run_id = submit(spec)
    workdir = get_settings().work_root / str(run_id)
    with prefect_client() as client:
        deadline = time.monotonic() + 120
        while not (workdir / "attempt-1" / "train").exists():  # each attempt has its own folder
            assert time.monotonic() < deadline, "training never started"
            time.sleep(0.2)
        client.set_flow_run_state(run_id, Cancelling(), force=True)
        cancelled_at = time.monotonic()
        while (state := client.read_flow_run(run_id).state).type != StateType.CANCELLED:
            assert time.monotonic() - cancelled_at < 30, f"still {state.name} 30 s after cancelling"
            time.sleep(0.2)
    deadline = time.monotonic() + 10
    while workdir.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not workdir.exists(), "the workdir is removed on cancellation"
    assert not Storage().exists("runs", str(run_id), MANIFEST)


README_SNIPPET = """
import json
from flows.train import train_flow
summary = train_flow({"model": "test_resnet", "dataset": "shapes-classify", "epochs": 1, "image_size": 32,
                      "pretrained": False, "workers": 0})
print("SUMMARY " + json.dumps(summary, default=str))
"""


def test_readme_python_snippet_uses_the_running_stack_and_logs_once(stack, tmp_path):
    """The README's `train_flow({...})` with `vtp up` running: the flow run is on the stack's
    Prefect server (auth string included), not on a temporary server of Prefect's own, and each
    log line is printed once (issue 14)."""
    import base64
    import json
    import subprocess
    import sys
    from collections import Counter

    import httpx

    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "PYTEST_"))}
    env.update({"VTP_HOME": stack["VTP_HOME"], "VTP_PREFECT_PORT": stack["VTP_PREFECT_PORT"],
                "VTP_API_PORT": stack["VTP_API_PORT"], "PREFECT_HOME": str(tmp_path / "prefect-home")})
    env.pop("VTP_STORAGE_URL", None)
    out = subprocess.run([sys.executable, "-c", README_SNIPPET], capture_output=True, text=True, env=env,
                         timeout=300, cwd=Path(__file__).parents[2])
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-4000:]
    summary = json.loads(next(ln for ln in reversed(out.stdout.splitlines()) if ln.startswith("SUMMARY "))[8:])
    printed = out.stdout + out.stderr
    assert "temporary server" not in printed.lower(), printed[-3000:]
    auth = {"Authorization": "Basic " + base64.b64encode(stack["PREFECT_AUTH"].encode()).decode()}
    r = httpx.get(f"{stack['PREFECT_API_URL']}/flow_runs/{summary['run_id']}", headers=auth, timeout=30)
    assert r.status_code == 200 and r.json()["state"]["type"] == "COMPLETED", r.text[:300]
    lines = [ln for ln in printed.splitlines() if " | " in ln and ("INFO" in ln or "WARNING" in ln)]
    assert lines, printed[-2000:]
    twice = [ln for ln, n in Counter(lines).items() if n > 1]
    assert not twice, f"log lines printed more than once: {twice[:5]}"
