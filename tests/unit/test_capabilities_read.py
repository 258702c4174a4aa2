"""What a framework's capabilities.json declares is what vtp does (issue 15: `resume` and `export`
were declared and never read)."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.errors import TrainerError
from core.frameworks import capabilities, frameworks
from core.spec import parse_spec
from tasks.export import export_checkpoint
from tasks.train_steps import _resumable


@pytest.mark.parametrize("framework", ["ultralytics", "timm", "huggingface"])
def test_every_shipped_trainer_resumes_as_declared(framework):
    assert capabilities(framework).resume is True  # tests/integration/test_resume.py resumes each of them


def test_resume_follows_the_capabilities(monkeypatch):
    spec = parse_spec({"model": "resnet18", "dataset": "d"})
    assert _resumable(spec)
    caps = capabilities("timm")
    from dataclasses import replace

    import core.frameworks as registry

    monkeypatch.setattr(registry, "capabilities", lambda name: replace(caps, resume=False) if name == "timm" else caps)
    assert not _resumable(spec)


@pytest.mark.parametrize("framework", ["ultralytics", "timm", "huggingface"])
def test_export_formats_are_the_declared_ones(framework, tmp_path):
    assert framework in frameworks()
    with pytest.raises(TrainerError) as refused:
        export_checkpoint(framework, Path(tmp_path / "best.pt"), "tflite", 64, tmp_path / "out")
    message = str(refused.value)
    assert f"not an export format of {framework}" in message
    assert all(fmt in message for fmt in capabilities(framework).export)


def test_a_plugin_whose_libraries_are_missing_is_not_an_installed_framework(tmp_path, monkeypatch):
    """A trainer image installs one framework's libraries: the other plugins' code is there, their
    libraries are not, so they are not installed frameworks (capabilities.json ``requires``)."""
    import importlib.metadata
    import json

    from core import frameworks

    for name, requires in (("vtp_fw_here", ["json"]), ("vtp_fw_missing", ["json", "no_such_library_xyz"])):
        (tmp_path / name).mkdir()
        (tmp_path / name / "__init__.py").write_text("")
        caps = json.loads((frameworks._package_files("trainers.timm") / "capabilities.json").read_text())
        (tmp_path / name / "capabilities.json").write_text(json.dumps({**caps, "framework": name, "requires": requires}))
    monkeypatch.syspath_prepend(str(tmp_path))
    points = [importlib.metadata.EntryPoint(name=n, value=n, group=frameworks.ENTRY_POINT_GROUP)
              for n in ("vtp_fw_here", "vtp_fw_missing")]
    monkeypatch.setattr(importlib.metadata, "entry_points", lambda group=None: points)
    frameworks.clear_cache()
    try:
        assert frameworks.frameworks() == ["vtp_fw_here"]
        assert frameworks.unavailable() == {"vtp_fw_missing": ("no_such_library_xyz",)}
        assert frameworks.capabilities("vtp_fw_here").requires == ("json",)
    finally:
        monkeypatch.undo()
        frameworks.clear_cache()
    assert "timm" in frameworks.frameworks()
