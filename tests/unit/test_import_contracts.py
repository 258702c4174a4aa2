"""The import contracts of pyproject.toml ([tool.importlinter]) hold, and they catch a forbidden import
even when it hides inside a function (grimp reads every import statement of a module)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("core", "cli", "api", "ui", "flows", "tasks", "trainers", "chat")
CORE_CONTRACT = "core imports no other vtp package"


def lint_imports(cwd: Path) -> subprocess.CompletedProcess[str]:
    """`lint-imports` with cwd's pyproject.toml and cwd's packages first on the import path."""
    env = {**os.environ, "PYTHONPATH": str(cwd)}
    script = Path(sys.executable).with_name("lint-imports")
    return subprocess.run([str(script), "--no-cache"], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=300)


def test_every_contract_is_kept():
    out = lint_imports(ROOT)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "0 broken" in out.stdout, out.stdout
    assert CORE_CONTRACT in out.stdout  # the contracts were read, not an empty configuration


def test_an_import_inside_a_function_in_core_breaks_the_core_contract(tmp_path):
    for name in PACKAGES:
        shutil.copytree(ROOT / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    durations = tmp_path / "core" / "durations.py"
    durations.write_text(durations.read_text() + "\n\ndef f():\n    import api\n")

    out = lint_imports(tmp_path)

    assert out.returncode != 0, out.stdout
    broken = out.stdout[out.stdout.index("Broken contracts"):]
    assert CORE_CONTRACT in broken
    assert "core.durations -> api" in broken
