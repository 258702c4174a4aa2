"""Real services for integration tests: moto's S3 server on loopback and whole `vtp up` stacks
(Prefect server, work pools, deployments, one process worker per pool) in temporary VTP_HOMEs, one on
file:// storage and one on moto's S3 (tests/stack_fixtures.py).

Under CI=true a service that cannot start is a failure, never a skip."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

CI = os.environ.get("CI", "").lower() == "true"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def unavailable(reason: str):
    if CI:
        pytest.fail(f"{reason} (CI=true: a missing service is a failure)")
    pytest.skip(reason)


def wait_for(predicate, timeout: float = 60, every: float = 0.5):
    """``predicate()``'s first truthy value, polled every ``every`` s; AssertionError after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"not true within {timeout:.0f}s")


def vtp(*args: str, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run the real `vtp` console script."""
    exe = Path(sys.executable).with_name("vtp")
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([str(exe), *args], capture_output=True, text=True, env=full_env, timeout=timeout)
