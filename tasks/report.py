"""What the flow adds to a run's report: ``spec.yaml`` (the spec that reproduces the run) and a
Prefect table of the per-class metrics the trainer wrote (``per_class.json``; the trainers write it
with the rest of their evaluation report, :mod:`trainers.common.report`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from core.contracts import PER_CLASS
from core.escape import cell, md_text


def write_spec(outputs: Path, spec: dict[str, Any]) -> Path:
    """``artifacts/spec.yaml``: the exact spec, for `vtp train --spec spec.yaml`."""
    path = outputs / "artifacts" / "spec.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    clean = {k: v for k, v in spec.items() if v not in (None, {}, [])}
    path.write_text(yaml.safe_dump(clean, sort_keys=False))
    return path


def publish_prefect_tables(outputs: Path, run_id: str) -> bool:
    """A Prefect table artifact of per-class metrics when the trainer wrote them; False otherwise.
    Class names come from the dataset (user data): HTML and Markdown links in them are escaped."""
    path = outputs / "artifacts" / PER_CLASS
    if not path.is_file():
        return False
    from prefect.artifacts import create_table_artifact

    rows = [{md_text(k): cell(v) for k, v in row.items()} for row in json.loads(path.read_text())["rows"]]
    create_table_artifact(rows, key="per-class-metrics", description=f"vtp run {md_text(run_id)}: per-class metrics")
    return True
