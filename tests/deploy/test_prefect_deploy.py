"""`prefect deploy --all` per environment file, against a real Prefect server: every deployment of
prefect.yaml lands on <framework>-<target>, the nightly schedule keeps its cron, timezone and
paused state, and the Kubernetes pools carry vtp's templates. No build/push step runs (no Docker)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import yaml

from cli.pools import PROJECT_DIR, ensure_pools, image_for, pool_frameworks
from tests.deploy.conftest import TARGETS, target_env

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("target", TARGETS)
def test_deploy_all_per_environment(target: str, prefect_server: str, tmp_path, monkeypatch) -> None:
    from prefect.settings import PREFECT_API_URL, temporary_settings

    env = target_env(target, PREFECT_API_URL=prefect_server, VTP_HOME=str(tmp_path))
    with temporary_settings(updates={PREFECT_API_URL: prefect_server}):
        pools = ensure_pools(target, env)
    out = subprocess.run(
        [sys.executable, "-m", "prefect", "--no-prompt", "deploy", "--all", "--prefect-file", "prefect.yaml"],
        cwd=PROJECT_DIR, env={**os.environ, **env, "PREFECT_HOME": str(tmp_path / "prefect")},
        capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]

    from prefect.client.orchestration import get_client

    config = yaml.safe_load((PROJECT_DIR / "prefect.yaml").read_text())
    with temporary_settings(updates={PREFECT_API_URL: prefect_server}), get_client(sync_client=True) as client:
        for fw in pool_frameworks():
            pool = client.read_work_pool(f"{fw}-{target}")
            assert pool.name in pools
            if target == "process":
                assert pool.type == "process"
                continue
            props = pool.base_job_template["variables"]["properties"]
            assert pool.type == "kubernetes"
            assert props["image"]["default"] == image_for(fw, env)
            assert props["namespace"]["default"] == env["VTP_K8S_NAMESPACE"]
            assert {"gpu_limit", "shm_size", "run_token_secret", "node_selector", "tolerations"} <= set(props)
            manifest = pool.base_job_template["job_configuration"]["job_manifest"]
            assert manifest["spec"]["template"]["spec"]["volumes"][0]["emptyDir"]["medium"] == "Memory"
        for dep_config in config["deployments"]:
            dep = client.read_deployment_by_name(f"train/{dep_config['name']}")
            assert dep.work_pool_name == dep_config["work_pool"]["name"].replace("{{ $VTP_TARGET }}", target)
            job_env = dep.job_variables["env"]
            assert job_env["VTP_STORAGE_URL"] == env["VTP_STORAGE_URL"]
            assert job_env["VTP_API_URL"] == env["VTP_API_URL"]
            assert not any("{{" in str(v) for v in job_env.values())
            assert "VTP_HOME" not in job_env  # the work folder is the worker's or the pod's own
            assert dep.pull_steps == [{"prefect.deployments.steps.set_working_directory": {
                "directory": env["VTP_PROJECT_DIR"]}}]
            if dep_config.get("schedules"):
                (sched,) = dep.schedules
                assert sched.schedule.cron == "0 2 * * *"
                assert sched.schedule.timezone == "Asia/Seoul"
                assert sched.active is False
                assert dep.parameters["spec"]["dataset"] == "shapes-detect"
            else:
                assert not dep.schedules
