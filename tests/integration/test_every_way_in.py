"""One ledger (issue 15): a run started each way a person can start one — the web app's API, the
chat, `vtp train`, python `train_flow`, a schedule, and the Prefect UI (a flow run created from the
deployment) — is in the stack's `GET /api/runs` with its readable name, and ends `completed` with
metrics and a checkpoint. Against the real `vtp up` stack: its API, its Prefect server, its workers."""

from __future__ import annotations

import datetime as dt
import os
import re
import subprocess
import sys

import httpx
import pytest
import yaml

from tests.integration.conftest import vtp, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]

# tiny: a 1-epoch timm test network on 32 px images, no download, no loader processes
SPEC = {"model": "test_resnet", "dataset": "shapes-classify", "epochs": 1, "image_size": 32, "batch_size": 8,
        "workers": 0, "pretrained": False}
NAME = re.compile(r"test-resnet-shapes-classify-\d+")  # "_" is not in a name: [a-z0-9.-]
TERMINAL = ("completed", "failed", "crashed", "cancelled")


def _api(stack) -> httpx.Client:
    token = (stack["home"] / "api_token").read_text().strip()
    return httpx.Client(base_url=stack["API_URL"], headers={"Authorization": f"Bearer {token}"}, timeout=30)


def _all_runs(api: httpx.Client) -> list[dict]:
    return api.get("/api/runs", params={"limit": 500}).json()["items"]


def _find(api: httpx.Client, *, run_id: str | None = None, flow_run_id: str | None = None,
          seed: int | None = None) -> dict | None:
    for run in _all_runs(api):
        if run_id and run["id"] == run_id:
            return run
        if flow_run_id and run.get("prefect_flow_run_id") == flow_run_id:
            return run
        if seed is not None and run["spec"].get("seed") == seed:
            return run
    return None


@pytest.mark.timeout(1800)  # six real runs at once; a busy machine trains them slowly (no timing is asserted)
def test_every_way_in_lands_in_the_ledger(stack_env, tmp_path):
    from core.prefect_api import prefect_client
    from core.settings import Settings

    env = {k: stack_env[k] for k in ("VTP_HOME", "VTP_PREFECT_PORT", "VTP_API_PORT")}
    assert vtp("datasets", "sample", "shapes-classify", env=env).returncode == 0
    api = _api(stack_env)
    started: dict[str, dict] = {}  # way -> how to find its run
    # each way gets its own seed, so its run can be told apart whatever id it was given

    # 1. the web app / REST API
    r = api.post("/api/runs", json={"spec": {**SPEC, "seed": 1}})
    assert r.status_code == 201, r.text
    started["api"] = {"run_id": r.json()["id"]}

    # 2. the chat: a request, then the confirmation
    first = api.post("/api/chat", json={"message": "train test_resnet on shapes-classify for 1 epoch, image size 32, "
                                                   "batch 8, workers 0, seed 2, from scratch"}).json()
    assert first["ready"] and first["run"] is None, first
    second = api.post("/api/chat", json={"session_id": first["session_id"], "message": "yes, go"}).json()
    assert second["run"], second
    started["chat"] = {"run_id": second["run"]["id"]}

    # 3. `vtp train` (goes through the API while the stack is up), detached
    spec_file = tmp_path / "spec.yaml"
    spec_file.write_text(yaml.safe_dump({**SPEC, "seed": 3}))
    out = vtp("train", "--spec", str(spec_file), "--detach", env=env)
    assert out.returncode == 0 and "through the vtp API" in out.stdout, out.stdout + out.stderr
    started["cli"] = {"run_id": re.search(r"\(([0-9a-f-]{36})\)", out.stdout).group(1)}

    # 4. python: `train_flow(...)` in a process of its own, against the running stack's server
    code = ("from flows.train import train_flow\n"
            f"train_flow({dict(SPEC, seed=4)!r})\n")
    python = subprocess.Popen([sys.executable, "-c", code], env={**os.environ, **env}, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
    started["python"] = {"seed": 4}

    # 5. a schedule: its deployment's runs are made by Prefect's scheduler
    sched_spec = tmp_path / "sched.yaml"
    sched_spec.write_text(yaml.safe_dump({**SPEC, "seed": 5}))
    # one slot soon, the next an hour later: exactly one scheduled run within the test (a 10 s
    # interval started several under load, and removing the schedule mid-start crashed one)
    anchor = (dt.datetime.now(dt.UTC) + dt.timedelta(seconds=20)).isoformat()
    added = vtp("schedule", "add", "ledger-every-way", "--spec", str(sched_spec), "--interval", "3600",
                "--anchor", anchor, "--active", env=env)
    assert added.returncode == 0, added.stdout + added.stderr

    # 6. the Prefect UI's "Run": a flow run created from the deployment, nothing of vtp's involved
    with prefect_client(Settings()) as pc:
        deployment = pc.read_deployment_by_name("train/train-timm")
        flow_run = pc.create_flow_run_from_deployment(deployment.id, parameters={"spec": {**SPEC, "seed": 6}})
        # a flow run whose spec does not validate is not adopted (it fails in the flow, and says why there)
        bad = pc.create_flow_run_from_deployment(deployment.id, parameters={"spec": {**SPEC, "model": "resnet99x"}})
    started["prefect-ui"] = {"flow_run_id": str(flow_run.id)}

    try:
        # the schedule's run that Prefect started (the schedule goes at the end, its later slots with it)
        def first_scheduled() -> dict | None:
            runs = [r for r in _all_runs(api) if r["spec"].get("seed") == 5 and r["state"] not in ("queued", "pending")]
            return min(runs, key=lambda r: r["created"]) if runs else None

        # it starts when the pool has a slot: after some of the five above on a busy machine (seen: > 300 s)
        started["schedule"] = {"run_id": wait_for(first_scheduled, timeout=900, every=2)["id"]}
        ended = {}
        for way, how in started.items():
            run = wait_for(lambda how=how: (r := _find(api, **how)) and r["state"] in TERMINAL and r, timeout=600, every=2)
            ended[way] = run
    finally:
        vtp("schedule", "remove", "ledger-every-way", env=env)
        try:
            python.wait(timeout=120)
        except subprocess.TimeoutExpired:
            python.kill()
    for way, run in ended.items():
        assert run["state"] == "completed", (way, run["state"], run.get("error"))
        assert NAME.fullmatch(run["name"] or ""), (way, run["name"])
        assert "metrics/accuracy_top1" in (run["final_metrics"] or {}), (way, run["final_metrics"])
        assert run["checkpoint_uri"] and "/checkpoints/" in run["checkpoint_uri"], (way, run["checkpoint_uri"])
        assert run["epochs_done"] == 1, (way, run)
        # the same run, asked for by its name
        assert api.get(f"/api/runs/{run['name']}").json()["id"] == run["id"], way
    assert _find(api, flow_run_id=str(bad.id)) is None
    adopted = ended["prefect-ui"]
    assert adopted["id"] == str(flow_run.id) and adopted["origin"] == "prefect"  # its run id is the flow-run id
    points = api.get(f"/api/runs/{adopted['id']}/metrics").json()["points"]
    assert {p["epoch"] for p in points} == {1}  # its epochs too, from the run's results.csv
    with prefect_client(Settings()) as pc:  # and the Prefect UI shows the ledger's name
        assert NAME.fullmatch(pc.read_flow_run(flow_run.id).name)
    names = [run["name"] for run in ended.values()]
    assert len(set(names)) == len(names), names  # one name each
    assert len({run["id"] for run in ended.values()}) == 6
    # and `vtp runs` lists them by name, from the same ledger
    table = vtp("runs", "--limit", "50", env=env).stdout
    for way, run in ended.items():
        assert run["name"] in table, (way, table)
