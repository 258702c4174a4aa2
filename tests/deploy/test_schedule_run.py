"""`vtp schedule add` makes a deployment whose schedule really fires on the local process pool:
a flow run of it is created by the server's scheduler and started by the stack's worker."""

from __future__ import annotations

import datetime as dt
import time

import pytest
import yaml

from tests.integration.conftest import vtp

pytestmark = pytest.mark.integration


def test_scheduled_deployment_runs(stack_env, tmp_path) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId
    from prefect.settings import PREFECT_API_URL, temporary_settings

    env = {k: stack_env[k] for k in ("VTP_HOME", "VTP_PREFECT_PORT", "VTP_API_PORT")}
    # An unknown dataset fails in the flow's first task: the run is real, and it is quick.
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump({"model": "yolo11n", "dataset": "no-such-dataset", "epochs": 1,
                                    "image_size": 64}))
    # Prefect's scheduler creates runs for future slots only, on its loop (5 s under `vtp up`)
    anchor = dt.datetime.now(dt.UTC).isoformat()
    out = vtp("schedule", "add", "sched-test", "--spec", str(spec), "--interval", "10", "--anchor", anchor,
              "--active", env=env)
    assert out.returncode == 0, out.stdout + out.stderr
    listed = vtp("schedule", "list", env=env)
    assert "sched-test" in listed.stdout and "active" in listed.stdout, listed.stdout + listed.stderr

    with temporary_settings(updates={PREFECT_API_URL: stack_env["PREFECT_API_URL"]}), \
            get_client(sync_client=True) as client:
        dep = client.read_deployment_by_name("train/sched-test")
        assert dep.work_pool_name == "ultralytics-process" and "scheduled" in dep.tags
        deadline, started = time.monotonic() + 90, None
        while time.monotonic() < deadline and started is None:
            runs = client.read_flow_runs(deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[dep.id])))
            for run in runs:
                history = {s.type.value for s in client.read_flow_run_states(run.id)}
                if "RUNNING" in history:
                    started = run
            time.sleep(2)
        assert started is not None, f"no run of the schedule started: {[r.state_name for r in runs]}"
        assert started.parameters["spec"]["dataset"] == "no-such-dataset"

    removed = vtp("schedule", "remove", "sched-test", env=env)
    assert removed.returncode == 0, removed.stderr
    assert "sched-test" not in vtp("schedule", "list", env=env).stdout
