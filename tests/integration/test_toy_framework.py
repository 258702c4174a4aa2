"""A framework from outside vtp: the `toy` plugin (tests/toy_framework) is found only through its
`vtp.trainers` entry point, and trains through the real flow with no file of vtp changed.

The flow is called in-process as `vtp train --local` calls it: no `vtp up` stack, Prefect's own
temporary server."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlparse

import pytest

from tests.integration.conftest import free_port

pytestmark = [pytest.mark.integration, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]
TOY = ROOT / "tests" / "toy_framework"


def _tree_state() -> set[str]:
    """`git status` lines of every changed, untracked and ignored path (bytecode caches and the
    virtual environment, where Prefect keeps its UI build, left out)."""
    out = subprocess.run(["git", "status", "--porcelain", "--ignored", "--untracked-files=all"], cwd=ROOT,
                         capture_output=True, text=True, check=True).stdout
    return {line for line in out.splitlines()
            if "__pycache__" not in line and not line.endswith(".pyc") and not line[3:].startswith(".venv/")}


@pytest.fixture
def toy_installed(monkeypatch):
    """The toy distribution on sys.path (and PYTHONPATH, for subprocesses), discovery caches cleared."""
    from core import frameworks

    monkeypatch.syspath_prepend(str(TOY))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in (str(TOY), os.environ.get("PYTHONPATH")) if p))
    frameworks.clear_cache()
    yield
    monkeypatch.undo()  # sys.path first, so the cache is rebuilt without the toy
    frameworks.clear_cache()
    sys.modules.pop("vtp_toy", None)


def test_toy_framework_is_discovered_without_importing_it(toy_installed):
    from core import frameworks

    assert "toy" in frameworks.frameworks()
    assert frameworks.capabilities("toy").main_metric == {"classify": "metrics/accuracy_top1"}
    assert "vtp_toy" not in sys.modules  # capabilities come from the package's files; importing waits for get_trainer
    out = subprocess.run([sys.executable, "-c", "from core.frameworks import frameworks; print(frameworks())"],
                         capture_output=True, text=True, timeout=60, check=True)
    assert "'toy'" in out.stdout  # a subprocess (a worker, the zygote) finds it through PYTHONPATH


def test_toy_framework_trains_through_the_flow(toy_installed, monkeypatch, tmp_path):
    import torch
    from prefect.settings import (
        PREFECT_HOME,
        PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS,
        temporary_settings,
    )

    from core.prefect_api import server_healthy
    from core.settings import get_settings
    from core.spec import parse_spec
    from tasks.dataset_ingest import ingest_sample

    before = _tree_state()
    monkeypatch.setenv("VTP_PREFECT_PORT", str(free_port()))  # vtp's own server is not running here
    settings = get_settings()
    assert not server_healthy(settings.prefect_api_url, timeout=1.0)
    monkeypatch.delenv("PREFECT_API_URL", raising=False)  # as `vtp train --local`: Prefect's temporary server
    ingest_sample("shapes-classify", n_train=8, n_val=4, image_size=32)
    spec = parse_spec({"model": "toy-linear", "dataset": "shapes-classify", "epochs": 2, "batch_size": 8})
    assert (spec.framework, spec.task, spec.image_size) == ("toy", "classify", 16)

    from flows.train import train_flow

    # its own Prefect home (the temporary server's database), and the patience a busy machine needs
    with temporary_settings(updates={PREFECT_HOME: tmp_path / "prefect",
                                     PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS: 300}):
        state = train_flow(spec, return_state=True)

    assert state.is_completed(), state.message
    summary = state.result()
    assert summary["spec"]["framework"] == "toy" and summary["epochs_completed"] == 2
    assert summary["main_metric"]["name"] == "metrics/accuracy_top1"
    assert 0.0 <= summary["main_metric"]["value"] <= 1.0
    checkpoint = Path(urlparse(summary["checkpoint_uri"]).path)
    assert checkpoint.is_file() and checkpoint.is_relative_to(get_settings().home)
    saved = torch.load(checkpoint, weights_only=True)
    assert len(saved["classes"]) == summary["num_classes"] and saved["epoch"] in (1, 2)
    changed = {line for line in _tree_state() - before if not line[3:].startswith("tests/toy_framework/")}
    assert not changed, f"training a plugin framework changed files of vtp: {sorted(changed)}"
