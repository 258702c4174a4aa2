"""Fixtures for the deploy tests: the environment files and a Prefect server of their own
(deploying the kind/k8s targets re-points the train-* deployments, so never the shared stack's)."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from cli.pools import ENV_DIR, PROJECT_DIR, load_env_file
from core.prefect_api import server_healthy
from tests.integration.conftest import free_port, unavailable

TARGETS = ("process", "kind", "k8s")


def target_env(target: str, **overrides: str) -> dict[str, str]:
    """deploy/env/<target>.env as a dict; the process target's code folder is this checkout."""
    env = load_env_file(ENV_DIR / f"{target}.env")
    if target == "process":
        env["VTP_PROJECT_DIR"] = str(PROJECT_DIR)
    return {**env, **overrides}


@pytest.fixture(scope="session")
def prefect_server(tmp_path_factory):
    """A bare Prefect server on a free port, with its own PREFECT_HOME; yields its API URL."""
    home = tmp_path_factory.mktemp("prefect-home")
    port = free_port()
    env = {**os.environ, "PREFECT_HOME": str(home), "PREFECT_UI_ENABLED": "false",
           "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1"}
    log = open(home / "server.log", "wb")  # noqa: SIM115 - the server writes it until teardown
    proc = subprocess.Popen([sys.executable, "-m", "cli.prefect_server", "server", "start", "--host", "127.0.0.1",
                             "--port", str(port)], env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    url = f"http://127.0.0.1:{port}/api"
    deadline = time.monotonic() + 120
    while not server_healthy(url):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            unavailable(f"the Prefect server did not start; see {home / 'server.log'}")
        time.sleep(0.3)
    yield url
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
