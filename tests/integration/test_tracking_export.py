"""timm and ultralytics through the flow, one run each, checked four ways: MLflow (a local file
store) and ClearML (offline; its session zip read back) hold the spec's parameters, every epoch's
metrics exactly once and the checkpoint; the evaluation report is in storage and on the Prefect
server; and the run's checkpoint exported to ONNX (stored beside it) gives what PyTorch gives.
The Hugging Face trainer has the same checks in test_huggingface_flow.py."""

from __future__ import annotations

import csv
import glob
import io
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import pytest
import torch

from tasks.storage import MANIFEST, Storage, sha256_file
from tasks.tracking import MLflowTracker, flat_params
from tests.integration.reports import assert_report
from tests.integration.test_flow import run_flow

pytestmark = [pytest.mark.integration, pytest.mark.slow]

EPOCHS = 2
SPECS = {
    "ultralytics": {"model": "yolo11n", "dataset": "shapes-detect", "pretrained": False},
    "timm": {"model": "test_resnet", "dataset": "shapes-classify", "pretrained": False},
}


CHILD = """
import json, sys
from prefect.settings import PREFECT_API_URL, temporary_settings
from flows.train import train_flow
with temporary_settings(updates={PREFECT_API_URL: sys.argv[2]}):
    summary = train_flow(json.loads(sys.argv[1]))
print("SUMMARY " + json.dumps(summary, default=str))
"""


def run_flow_outside_pytest(spec: dict, api_url: str) -> dict:
    """The flow in a child python that does not look like a test run. ultralytics switches its own
    MLflow and ClearML integrations off under pytest (whatever its settings say), so only out here
    does "vtp keeps the framework's integrations off" get tested."""
    env = {k: v for k, v in os.environ.items() if k != "PYTEST_CURRENT_TEST"}
    out = subprocess.run([sys.executable, "-c", CHILD, json.dumps(spec), api_url], capture_output=True, text=True,
                         env=env, timeout=300, cwd=Path(__file__).parents[2])
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-4000:]
    return json.loads(next(ln for ln in reversed(out.stdout.splitlines()) if ln.startswith("SUMMARY "))[8:])


def epoch_rows(run_id: str) -> list[dict[str, float]]:
    """The run's results.csv: what the trainer measured each epoch (its 'epoch' column is 1-based)."""
    storage = Storage()
    with storage.fs.open(storage.path("runs", run_id, "artifacts", "results.csv"), "rt") as f:
        rows = list(csv.DictReader(io.StringIO(f.read())))
    return [{k.strip(): float(v) for k, v in row.items() if k.strip() != "time"} for row in rows]


def check_mlflow(mlruns: Path, summary: dict, rows: list[dict[str, float]]) -> None:
    from mlflow.tracking import MlflowClient

    spec, run_id = summary["spec"], summary["run_id"]
    client = MlflowClient(mlruns.as_uri())
    names = {e.name for e in client.search_experiments()} - {"Default"}
    assert names == {f"vtp-{spec['framework']}-{spec['task']}"}, "only vtp's experiment: the framework logs nothing"
    (run,) = client.search_runs([client.get_experiment_by_name(names.pop()).experiment_id])
    assert run.info.status == "FINISHED" and run.data.tags["vtp.run_id"] == run_id
    assert run.data.params == flat_params(spec)

    logged = set(run.data.metrics)
    for key in (k for k in rows[0] if k != "epoch"):
        assert MLflowTracker.key(key) in logged, f"{key} was not logged"
    for key in logged:  # each metric once per epoch, at steps 1..EPOCHS
        history = client.get_metric_history(run.info.run_id, key)
        assert sorted(m.step for m in history) == list(range(1, EPOCHS + 1)), (key, history)
    main = summary["main_metric"]["name"]
    history = sorted(client.get_metric_history(run.info.run_id, MLflowTracker.key(main)), key=lambda m: m.step)
    assert [m.value for m in history] == pytest.approx([row[main] for row in rows], rel=1e-3, abs=1e-5)

    local = Path(client.download_artifacts(run.info.run_id, "checkpoints/best.pt"))
    manifest = Storage().read_json("runs", run_id, MANIFEST)
    assert sha256_file(local) == manifest["files"]["checkpoints/best.pt"]["sha256"]
    assert "artifacts/per_class.json" in {a.path for a in client.list_artifacts(run.info.run_id, "artifacts")}


def check_clearml(cache: Path, summary: dict, rows: list[dict[str, float]]) -> None:
    zips = glob.glob(str(cache / "offline" / "*.zip"))
    assert len(zips) == 1, zips
    z = zipfile.ZipFile(zips[0])
    task = json.loads(z.read("task.json"))
    params = {k: v["value"] for k, v in task["hyperparams"]["spec"].items()}
    assert params == flat_params(summary["spec"])

    events = [json.loads(line) for line in z.read("metrics.jsonl").decode().splitlines() if line.strip()]
    scalars = [e for ev in events for e in (ev if isinstance(ev, list) else [ev]) if e.get("type") == "training_stats_scalar"]
    seen: dict[tuple[str, str], list[int]] = {}
    for e in scalars:
        seen.setdefault((e["metric"], e["variant"]), []).append(int(e["iter"]))
    expected = {(k.rpartition("/")[0] or "metrics", k.rpartition("/")[2]) for k in rows[0] if k != "epoch"}
    assert expected <= set(seen), sorted(expected - set(seen))
    for name, iters in seen.items():  # nothing twice, nothing from the framework's own integration
        assert sorted(iters) == list(range(1, EPOCHS + 1)), (name, iters)
    assert any("checkpoint" in n and n.endswith("best.pt") for n in z.namelist()), z.namelist()


def check_onnx(summary: dict) -> None:
    """Export the run to ONNX and compare ONNX Runtime with PyTorch on the same input."""
    import onnxruntime as ort

    from tasks.export import export_run, load_for_export

    spec, run_id = summary["spec"], summary["run_id"]
    result = export_run(run_id, "onnx")
    assert result["path"] == "exports/model.onnx"
    exported = Path(urlparse(result["uri"]).path)
    checkpoint = Path(urlparse(summary["checkpoint_uri"]).path)
    assert exported.parent.parent == checkpoint.parent.parent, "stored in the run's folder, beside checkpoints/"
    manifest = Storage().read_json("runs", run_id, MANIFEST)
    assert manifest["files"]["exports/model.onnx"]["sha256"] == sha256_file(exported)
    assert "checkpoints/best.pt" in manifest["files"], "the manifest still lists the run's own files"

    session = ort.InferenceSession(str(exported))
    size = spec["image_size"]
    if spec["framework"] == "ultralytics":
        from trainers.ultralytics.env import import_ultralytics

        x = torch.rand(1, 3, size, size)  # the exporter's graph has a fixed batch of 1
        model = import_ultralytics().YOLO(str(checkpoint)).model.float().eval()
        with torch.no_grad():
            ref = model(x)[0]  # eval mode: (decoded predictions (1, 4 + classes, anchors), raw head outputs)
        assert session.get_inputs()[0].name == "images" and session.get_outputs()[0].name == "output0"
        tol = {"rtol": 1e-3, "atol": 1e-3}  # boxes are in pixels; the exporter fuses conv and batch-norm
    else:
        x = torch.randn(2, 3, size, size)
        module, _ = load_for_export(spec["framework"], checkpoint)
        with torch.no_grad():
            ref = module(x)
        tol = {"rtol": 1e-3, "atol": 1e-4}
    got = session.run(None, {"images": x.numpy()})[0]
    assert got.shape == tuple(ref.shape)
    np.testing.assert_allclose(got, ref.numpy(), **tol)


@pytest.mark.parametrize("framework", list(SPECS))
def test_tracked_reported_exported(framework, stack, tmp_path, monkeypatch):
    from tasks.dataset_ingest import ingest_sample

    mlruns, cache = tmp_path / "mlruns", tmp_path / "clearml"
    monkeypatch.setenv("VTP_TRACKERS", "mlflow,clearml")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlruns.as_uri())
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # mlflow 3.x refuses file stores otherwise
    monkeypatch.setenv("CLEARML_OFFLINE_MODE", "1")
    monkeypatch.setenv("CLEARML_CACHE_DIR", str(cache))
    spec = {**SPECS[framework], "epochs": EPOCHS, "image_size": 64, "batch_size": 8, "workers": 0, "patience": 0}
    ingest_sample(spec["dataset"], n_train=8, n_val=4)
    if framework == "ultralytics":
        summary = run_flow_outside_pytest(spec, stack["PREFECT_API_URL"])
    else:
        state = run_flow(spec, stack["PREFECT_API_URL"])
        assert state.is_completed(), state.message
        summary = state.result()
    assert summary["spec"]["framework"] == framework and summary["epochs_completed"] == EPOCHS
    rows = epoch_rows(summary["run_id"])
    assert [int(r["epoch"]) for r in rows] == list(range(1, EPOCHS + 1))

    assert_report(summary, stack["PREFECT_API_URL"])
    check_mlflow(mlruns, summary, rows)
    check_clearml(cache, summary, rows)
    check_onnx(summary)
