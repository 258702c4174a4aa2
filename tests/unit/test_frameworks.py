"""The trainer registry (core/frameworks.py): plugins come from the `vtp.trainers` entry points."""

from __future__ import annotations

import subprocess
import sys

import pytest

from core import frameworks
from core.errors import SpecError
from core.spec import parse_spec


def test_the_shipped_frameworks_come_first_in_preference_order():
    assert frameworks.frameworks()[:3] == ["ultralytics", "timm", "huggingface"]
    assert frameworks.plugin_package("timm") == "trainers.timm"
    assert parse_spec({"task": "detect", "dataset": "d"}).model == "yolo11n"  # not the DETR of huggingface


def test_capabilities_are_read_without_importing_the_plugin():
    code = ("import sys; from core.frameworks import all_capabilities; all_capabilities(); "
            "print(sorted(m for m in sys.modules if m.startswith('trainers.') or m in ('torch', 'timm')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "[]", out.stdout


def test_an_unknown_framework_names_the_installed_ones():
    with pytest.raises(SpecError) as e:
        parse_spec({"framework": "timmm", "task": "classify", "dataset": "d"})
    message = str(e.value)
    assert "framework='timmm' is not installed" in message
    assert "ultralytics, timm, huggingface" in message and "vtp.trainers" in message


def test_an_unknown_framework_has_no_capabilities_or_trainer():
    with pytest.raises(KeyError):
        frameworks.capabilities("nope")
    with pytest.raises(KeyError):
        frameworks.get_trainer("nope")
