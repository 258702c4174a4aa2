"""What the evaluation report of a completed run holds, in storage and on the Prefect server.

Every trainer writes ``per_class.json`` and the flow adds ``spec.yaml``, the ``per-class-metrics``
table and the ``train-report`` markdown artifact. The plots are the trainer's own: ultralytics draws
``confusion_matrix.png``, ``<Box|Mask|Pose>PR_curve.png`` and ``val_batch0_pred.jpg``; timm and
Hugging Face draw ``confusion_matrix.png`` (classify), ``PR_curve.png`` (detect) and ``val_pred_grid.jpg``."""

from __future__ import annotations

import json
from typing import Any

import yaml

from tasks.samples import CLASSES
from tasks.storage import MANIFEST, Storage

_ULTRALYTICS_PR = {"detect": "BoxPR_curve.png", "segment": "MaskPR_curve.png", "pose": "PosePR_curve.png",
                   "obb": "BoxPR_curve.png"}


def report_files(framework: str, task: str) -> set[str]:
    if framework == "ultralytics":
        plots = {"confusion_matrix.png", "val_batch0_pred.jpg"}
        if task in _ULTRALYTICS_PR:
            plots |= {"BoxPR_curve.png", _ULTRALYTICS_PR[task]}
    else:
        plots = {"val_pred_grid.jpg", "confusion_matrix.png" if task == "classify" else "PR_curve.png"}
    return {f"artifacts/{name}" for name in plots | {"per_class.json", "spec.yaml"}}


def prefect_artifacts(run_id: str, api_url: str) -> dict[str, Any]:
    """The run's artifacts on the Prefect server at ``api_url``, by key."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    from tests.integration.test_flow import prefect_at

    with prefect_at(api_url), get_client(sync_client=True) as client:
        found = client.read_artifacts(artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run_id])))
    return {a.key: a for a in found if a.key}


def assert_report(summary: dict[str, Any], api_url: str) -> None:
    """The report of the run ``summary`` describes: its files in the manifest and storage, the
    per-class table (one row per sample class), the spec to reproduce it, and its Prefect artifacts."""
    run_id, spec = summary["run_id"], summary["spec"]
    framework, task = spec["framework"], spec["task"]
    storage = Storage()
    files = set(storage.read_json("runs", run_id, MANIFEST)["files"])
    missing = report_files(framework, task) - files
    assert not missing, f"{framework} {task} report lacks {sorted(missing)}; the run has {sorted(files)}"
    for rel in report_files(framework, task):
        assert storage.fs.size(storage.path("runs", run_id, rel)) > 0, rel
    table = storage.read_json("runs", run_id, "artifacts", "per_class.json")
    assert table["task"] == task and [row["class"] for row in table["rows"]] == list(CLASSES)
    with storage.fs.open(storage.path("runs", run_id, "artifacts", "spec.yaml")) as f:
        assert yaml.safe_load(f) == {k: v for k, v in spec.items() if v not in (None, {}, [])}

    artifacts = prefect_artifacts(run_id, api_url)
    assert {"train-report", "per-class-metrics"} <= set(artifacts), sorted(artifacts)
    shown = artifacts["per-class-metrics"]
    assert shown.type == "table"
    rows = json.loads(shown.data) if isinstance(shown.data, str) else shown.data
    assert [row["class"] for row in rows] == list(CLASSES)
    assert artifacts["train-report"].type == "markdown" and summary["checkpoint_uri"] in artifacts["train-report"].data
