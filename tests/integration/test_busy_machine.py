"""A healthy run is never killed by its own safety nets, on a machine busy with other work; a hung
one is; a resume checkpoint that will not load never fails the run; a time limit stops and
publishes (issue 12)."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from uuid import UUID

import psutil
import pytest

from tests.stack_fixtures import free_port

pytestmark = [pytest.mark.integration]
ROOT = Path(__file__).resolve().parents[2]


@contextlib.contextmanager
def cpu_hogs(n: int | None = None) -> Iterator[list[subprocess.Popen]]:
    """Busy-loop processes on every core for the duration (a user's loaded workstation)."""
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n or os.cpu_count() or 2)]
    try:
        yield hogs
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()


@contextlib.contextmanager
def live_api(settings) -> Iterator[tuple[str, object]]:
    """The real API (its stale monitor included) served by uvicorn on a free loopback port."""
    import uvicorn

    from api.main import create_app

    port = free_port()
    app = create_app(settings)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the API did not start"
        time.sleep(0.1)
    try:
        yield f"http://127.0.0.1:{port}", app
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def test_slow_but_progressing_run_is_never_marked_stale(monkeypatch):
    """Batches slower than VTP_STALE_AFTER_S on a machine whose cores are all busy: the run's own
    heartbeat thread keeps it alive in the API. Once its process falls silent it is marked stale, and
    the attempt that comes back afterwards is refused as superseded (it stops, publishing nothing)."""
    from api import crud
    from core.contracts import Callbacks
    from core.settings import Settings
    from tasks.api_callbacks import ApiReporter
    from tasks.liveness import Liveness

    monkeypatch.setenv("VTP_STALE_AFTER_S", "3")
    monkeypatch.setenv("VTP_PREFECT_PORT", str(free_port()))  # nothing there: the run has no flow run
    settings = Settings()
    with live_api(settings) as (url, app), cpu_hogs():
        from api.security import mint_run_token

        sessions = app.state.sessions
        with sessions() as db:
            run_id = crud.create_run(db, spec={"model": "resnet18", "dataset": "d", "epochs": 4}).id
        reporter = ApiReporter(url, run_id, mint_run_token(run_id, settings), attempt=1)
        callbacks = Callbacks()
        reporter.attach(callbacks)
        superseded: list[str] = []
        liveness = Liveness(callbacks, every_s=0.5, hung_after_s=0, attempt=1, heartbeat=reporter.heartbeat,
                            superseded=lambda: reporter.superseded, on_superseded=superseded.append).start()

        def state() -> tuple[str, list[str]]:
            with sessions() as db:
                run = crud.get_run(db, run_id=run_id)
                return run.state, [e["kind"] for e in run.events or []]

        # Four batches of 4 s each: slower than the 3 s stale limit (the old loop-driven heartbeats
        # would have left 4 s gaps); the API's monitor checks every second.
        callbacks.train_start(epochs=4)
        for epoch in range(1, 3):
            for _ in range(2):
                time.sleep(4)
                callbacks.heartbeat()
                assert state() == ("running", []), "a progressing run was marked stale"
            callbacks.epoch_end(epoch, 4, {"loss": 1.0 / epoch})
        assert not superseded and not reporter.superseded

        # The process goes silent (frozen, or its machine cut off): stale, crashed.
        liveness.stop()
        deadline = time.monotonic() + 30
        while state()[0] != "crashed":
            assert time.monotonic() < deadline, f"the silent run was not marked stale: {state()}"
            time.sleep(0.5)
        assert "stale" in state()[1]

        # It comes back: its callbacks are refused as superseded, and it is told to stop.
        liveness = Liveness(callbacks, every_s=0.5, hung_after_s=0, attempt=1, heartbeat=reporter.heartbeat,
                            superseded=lambda: reporter.superseded, on_superseded=superseded.append).start()
        deadline = time.monotonic() + 30
        while not superseded:
            assert time.monotonic() < deadline, "the superseded attempt was never told to stop"
            time.sleep(0.2)
        liveness.stop()
        assert callbacks.should_stop(force=True), "the trainer's stop check sees it"
        reporter.close(timeout_s=10)
        assert state()[0] == "crashed"


HUNG_SCRIPT = textwrap.dedent("""
    import subprocess, sys, time
    from core.contracts import Callbacks
    from tasks.liveness import Liveness

    callbacks = Callbacks()
    worker = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])  # a data-loader worker
    print("worker", worker.pid, flush=True)
    liveness = Liveness(callbacks, every_s=0.2, hung_after_s=2, attempt=1).start()
    with liveness.watch():
        callbacks.train_start(epochs=5)
        callbacks.epoch_end(1, 5, {"loss": 1.0})
        for _ in range(7):
            callbacks.heartbeat()
        print("training", flush=True)
        time.sleep(600)  # stuck: no batch, no log line, no epoch
    print("never here", flush=True)
""")


def test_hung_trainer_process_is_killed_with_its_children(tmp_path):
    """Alive but without progress for VTP_HUNG_AFTER_S: the process kills its children and itself
    (SIGKILL), saying that it hung and where."""
    proc = subprocess.Popen([sys.executable, "-c", HUNG_SCRIPT], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        out, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == -signal.SIGKILL, (proc.returncode, out, err)
    assert "training" in out and "never here" not in out
    assert "the trainer hung: no progress for" in err and "epoch 2/5, 7 batches in" in err, err
    worker = int(out.split("worker ")[1].split()[0])
    deadline = time.monotonic() + 10
    while psutil.pid_exists(worker) and psutil.Process(worker).status() != psutil.STATUS_ZOMBIE:
        assert time.monotonic() < deadline, "the data-loader child outlived its hung parent"
        time.sleep(0.1)


FLOW_SCRIPT = textwrap.dedent("""
    import sys
    from flows.train import train_flow
    state = train_flow({"model": "resnet18", "dataset": "shapes-classify", "epochs": 200, "image_size": 32,
                        "batch_size": 2, "workers": 1, "pretrained": False}, return_state=True)
    print("finished", state.type, flush=True)
""")


def test_hung_flow_run_is_crashed_with_where_it_hung(stack, tmp_path):
    """A real training run whose data-loader worker stops (SIGSTOP: alive, never answering) hangs in
    the data loader; the watchdog marks the flow run Crashed with the reason and kills the process
    tree, so Prefect's crash-retry automation (for deployments) retries it from its checkpoint."""
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from core.settings import get_settings
    from tasks.dataset_ingest import ingest_sample

    ingest_sample("shapes-classify", n_train=48, n_val=8)
    env = {**os.environ, "PREFECT_API_URL": stack["PREFECT_API_URL"], "VTP_HUNG_AFTER_S": "40",
           "VTP_HOME": str(get_settings().home), "PYTHONUNBUFFERED": "1"}
    log = tmp_path / "flow.log"
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "-c", FLOW_SCRIPT], cwd=ROOT, env=env, stdout=out,
                                stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 600  # a busy machine trains slowly; no timing is asserted
        while "epoch 2/200" not in log.read_text():
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.3)
        # Stop every data-loader worker (alive, never answering) until the loader waits on one
        # for good: a worker stopped just as its epoch ended is replaced, so keep stopping new ones.
        stopped: list[psutil.Process] = []
        deadline = time.monotonic() + 180
        while proc.poll() is None:
            assert time.monotonic() < deadline, "the run never hung or was never killed: " + log.read_text()[-3000:]
            with contextlib.suppress(psutil.Error):
                for child in psutil.Process(proc.pid).children(recursive=True):
                    if child not in stopped:
                        with contextlib.suppress(psutil.Error):
                            child.send_signal(signal.SIGSTOP)
                            stopped.append(child)
            time.sleep(0.2)
        assert stopped, "the run had no data-loader worker to stop"
    finally:
        if proc.poll() is None:
            proc.kill()
    text = log.read_text()
    assert proc.returncode == -signal.SIGKILL, text[-3000:]
    assert "finished" not in text and "the trainer hung: no progress for" in text, text[-3000:]
    for child in stopped:
        assert not child.is_running() or child.status() == psutil.STATUS_ZOMBIE, "a data-loader worker outlived it"

    # by its id (the flow logs "run <id>: ..."): its name is the ledger's once the stack's API adopts it
    flow_run_id = re.search(r"run ([0-9a-f-]{36}): ", text).group(1)
    with (temporary_settings(updates={PREFECT_API_URL: stack["PREFECT_API_URL"]}),
          get_client(sync_client=True) as client):
        run = client.read_flow_run(UUID(flow_run_id))
    assert run.state.is_crashed(), run.state
    assert "hung" in run.state.message and "epoch" in run.state.message, run.state.message


def test_unloadable_resume_checkpoint_starts_over_instead_of_failing(stack, tmp_path):
    """The run's resume checkpoint is whole as a file but not a checkpoint the trainer can load: the
    run does not fail, it goes on from the previous one or, with none, starts over and says so."""
    import torch

    from tasks import resume
    from tasks.dataset_ingest import ingest_sample
    from tasks.storage import Storage, upload_folder

    ingest_sample("shapes-detect", n_train=8, n_val=4)
    run_id = "resume-broken-1"
    folder = tmp_path / "ckpt"
    (folder / "state" / "train" / "weights").mkdir(parents=True)
    torch.save({"not": "an ultralytics checkpoint"}, folder / "state" / "train" / "weights" / "last.pt")
    (folder / resume.STATE).write_text('{"epoch": 1, "epochs": 2, "checkpoint": "state/train", "uploaded_at": 0}')
    upload_folder(Storage(), folder, resume.PREFIX, run_id, "e000001-a1")

    from flows.train import train_flow
    from tests.integration.test_flow import prefect_at

    with prefect_at(stack["PREFECT_API_URL"]):
        state = train_flow({"model": "yolo11n", "dataset": "shapes-detect", "epochs": 2, "image_size": 64,
                            "batch_size": 8, "workers": 0, "pretrained": False}, run_id=run_id, return_state=True)
    assert state.is_completed(), state.message
    summary = state.result()
    assert summary["epochs_completed"] == 2 and summary["resumed_from_epoch"] is None
    assert any("could not be loaded" in n and "starting the run over" in n for n in summary["notes"]), summary["notes"]
    assert not Storage().exists(resume.PREFIX, run_id), "the resume folder is cleared once the run is published"


def test_max_time_stops_after_the_limit_and_publishes(stack):
    """max_time: the trainer stops at the limit, validates, and the run publishes what it has, with a note."""
    from tasks.dataset_ingest import ingest_sample
    from tasks.storage import Storage
    from tests.integration.test_flow import run_flow

    ingest_sample("shapes-detect", n_train=8, n_val=4)
    state = run_flow({"model": "yolo11n", "dataset": "shapes-detect", "epochs": 500, "image_size": 64,
                      "batch_size": 8, "workers": 0, "pretrained": False, "max_time": "15s"},
                     stack["PREFECT_API_URL"])
    assert state.is_completed(), state.message
    summary = state.result()
    assert 1 <= summary["epochs_completed"] < 500 and summary["stopped_early"]
    assert any("stopped at the time limit (max_time=15 s)" in n for n in summary["notes"]), summary["notes"]
    assert Storage().exists("runs", summary["run_id"], "checkpoints", "best.pt")
    assert summary["spec"]["max_time"] == 0.25
