"""Shared fixtures. Every test gets its own VTP_HOME, so no test sees another's state."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("YOLO_OFFLINE", "1")


@pytest.fixture(autouse=True)
def vtp_home(tmp_path_factory, monkeypatch):
    home = tmp_path_factory.mktemp("vtp-home")
    monkeypatch.setenv("VTP_HOME", str(home))
    monkeypatch.delenv("VTP_STORAGE_URL", raising=False)
    return home


from tests.stack_fixtures import (  # noqa: E402,F401 - shared fixtures
    any_stack,
    backend_stack,
    s3_endpoint,
    s3_storage,
    stack,
    stack_env,
)
