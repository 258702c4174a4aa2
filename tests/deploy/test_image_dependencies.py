"""Lean images (issue 18): each trainer image installs vtp's base dependencies and its framework's
dependency group only, the platform image the platform group plus the frameworks its in-process
predict needs; all from one uv.lock. Checked from the lock (``uv export``) — no image is built here —
and by installing each trainer group into a venv of its own and importing the flow there.

Sizes are estimates: the installed size of each package as it is installed in this checkout's venv
(the sizes in its dist-info RECORD files, Linux x86_64, CPython 3.11), summed over an image's set.
They are printed (``pytest -s``) and recorded in docs/deploy.md."""

from __future__ import annotations

import importlib.metadata
import os
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TRAINERS = ("ultralytics", "timm", "huggingface")
# what an image of each kind must not carry (Prefect's own dependencies, e.g. uvicorn and alembic for
# its server, come with the prefect client every image needs)
NEVER_IN_TRAINERS = {"gradio", "clearml", "mlflow-skinny", "instructor", "openai", "psycopg", "pyjwt", "kubernetes",
                     "prefect-kubernetes", "pytest", "playwright", "moto", "schemathesis"}
OTHER_FRAMEWORKS = {"ultralytics": {"timm", "transformers"}, "timm": {"ultralytics", "transformers"},
                    "huggingface": {"ultralytics"}}
NEVER_IN_PLATFORM = {"clearml", "mlflow-skinny", "pytest", "playwright", "moto", "schemathesis", "ruff"}


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def image_packages(*groups: str) -> set[str]:
    """The distributions ``uv sync --no-default-groups --group G ...`` installs, read from uv.lock."""
    args = [a for g in groups for a in ("--group", g)]
    out = subprocess.run(["uv", "export", "--frozen", "--no-default-groups", *args, "--no-hashes", "--no-emit-project",
                          "--format", "requirements-txt"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    names = {_norm(m.group(1)) for m in re.finditer(r"(?m)^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==", out.stdout)}
    assert names, out.stdout[:500]
    return names


def installed_mb(names: set[str]) -> float:
    """Installed size of ``names`` in this venv (sum of their RECORD sizes), MiB."""
    total = 0
    for dist in importlib.metadata.distributions():
        if _norm(dist.metadata["Name"]) in names:
            total += sum(f.size or 0 for f in dist.files or [])
    return total / 2**20


@pytest.fixture(scope="module")
def sets() -> dict[str, set[str]]:
    found = {f"trainer-{fw}": image_packages(fw) for fw in TRAINERS}
    found["platform"] = image_packages("platform", *TRAINERS)
    found["base"] = image_packages()
    return found


@pytest.mark.parametrize("framework", TRAINERS)
def test_a_trainer_image_installs_its_framework_only(sets, framework):
    names = sets[f"trainer-{framework}"]
    assert {"torch", "torchvision", "prefect", "s3fs", "httpx"} <= names
    assert _norm(framework if framework != "huggingface" else "transformers") in names
    assert not names & NEVER_IN_TRAINERS, names & NEVER_IN_TRAINERS
    assert not names & OTHER_FRAMEWORKS[framework], names & OTHER_FRAMEWORKS[framework]


def test_the_platform_image_has_no_trackers_or_test_tools(sets):
    names = sets["platform"]
    assert {"gradio", "uvicorn", "psycopg", "alembic", "openai", "instructor", "prefect-kubernetes"} <= names
    assert not names & NEVER_IN_PLATFORM, names & NEVER_IN_PLATFORM


def test_torch_comes_from_one_place(sets):
    """One torch for every image: the version uv.lock pins (no base image brings its own)."""
    pins = set()
    for groups in (("ultralytics",), ("timm",), ("huggingface",), ("platform", *TRAINERS)):
        out = subprocess.run(["uv", "export", "--frozen", "--no-default-groups", *[a for g in groups for a in ("--group", g)],
                              "--no-hashes", "--format", "requirements-txt"], cwd=ROOT, capture_output=True, text=True,
                             timeout=120).stdout
        pins |= set(re.findall(r"(?m)^torch==(\S+)", out))
    assert len(pins) == 1, pins
    assert all("FROM python:" in p.read_text() for p in (ROOT / "docker").glob("*.Dockerfile"))


def test_estimated_sizes_are_printed(sets, capsys):
    rows = {name: (len(pkgs), installed_mb(pkgs)) for name, pkgs in sets.items()}
    torch_stack = {n for n in sets["trainer-timm"] if n in ("torch", "triton") or n.startswith("nvidia-")}
    with capsys.disabled():
        print("\nimage set            packages  installed MiB  of which torch+CUDA libs "
              "(this venv's RECORD sizes, linux x86_64, cp311)")
        for name, (count, mb) in rows.items():
            cuda = installed_mb(sets[name] & torch_stack)
            print(f"  {name:18s} {count:8d}  {mb:13.0f}  {cuda:8.0f}")
    everything = installed_mb({_norm(d.metadata["Name"]) for d in importlib.metadata.distributions()})
    for fw in TRAINERS:  # each trainer image is smaller than the whole development environment
        assert 0 < rows[f"trainer-{fw}"][1] < everything


@pytest.mark.parametrize("framework", TRAINERS)
def test_the_flow_imports_in_a_venv_of_one_trainer_group(framework, tmp_path):
    """Install exactly a trainer image's set into a venv of its own (uv links from its cache) and
    import the flow there: only that framework is an installed framework (and timm beside
    huggingface), a spec for it validates, and no platform package is importable."""
    env = {**os.environ, "UV_PROJECT_ENVIRONMENT": str(tmp_path / "venv"), "VTP_HOME": str(tmp_path / "home")}
    env.pop("VIRTUAL_ENV", None)
    sync = subprocess.run(["uv", "sync", "--frozen", "--no-default-groups", "--group", framework], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
    assert sync.returncode == 0, sync.stderr[-2000:]
    model = {"ultralytics": "yolo11n", "timm": "resnet18", "huggingface": "facebook/detr-resnet-50"}[framework]
    code = f"""
import importlib.util, sys
from core import frameworks
# the huggingface image also has timm (DETR checkpoints build their backbone with it)
expected = [{framework!r}] if {framework!r} != "huggingface" else ["timm", "huggingface"]
assert frameworks.frameworks() == expected, frameworks.frameworks()
import flows.train
from core.spec import parse_spec
spec = parse_spec({{"model": {model!r}, "dataset": "d", "epochs": 1}})
assert spec.framework == {framework!r}, spec.framework
present = [m for m in ("gradio", "clearml", "instructor", "psycopg", "playwright") if importlib.util.find_spec(m)]
assert not present, present
print("ok", sorted(frameworks.unavailable()))
"""
    out = subprocess.run([str(tmp_path / "venv" / "bin" / "python"), "-c", code], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and out.stdout.startswith("ok"), out.stdout + out.stderr[-3000:]
