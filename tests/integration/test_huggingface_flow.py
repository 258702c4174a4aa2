"""Hugging Face trainer through the flow (tiny configs built here), with MLflow (file store) and
ClearML (offline session zip) tracking, the evaluation report, and ONNX export checked against
PyTorch with ONNX Runtime."""

from __future__ import annotations

import glob
import json
import zipfile
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import pytest
import torch

from tasks.storage import MANIFEST, Storage
from tests.integration.reports import assert_report
from tests.integration.test_flow import an_image, run_flow

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def tiny_model(task: str, folder: Path) -> Path:
    from transformers import ConditionalDetrConfig, ResNetConfig, ViTConfig

    if task == "classify":
        cfg = ViTConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                        image_size=64, patch_size=16)
    else:
        backbone = ResNetConfig(embedding_size=16, hidden_sizes=[16, 32], depths=[1, 1], out_features=["stage2"],
                                layer_type="basic")
        cfg = ConditionalDetrConfig(backbone_config=backbone, use_timm_backbone=False, use_pretrained_backbone=False,
                                    d_model=32, encoder_layers=1, decoder_layers=1, encoder_attention_heads=2,
                                    decoder_attention_heads=2, encoder_ffn_dim=64, decoder_ffn_dim=64, num_queries=10)
    cfg.save_pretrained(folder)
    return folder


def test_spec_infers_huggingface(tmp_path):
    from core.errors import SpecError
    from core.spec import parse_spec

    assert parse_spec({"model": "google/vit-base-patch16-224", "dataset": "d"}).framework == "huggingface"
    s = parse_spec({"model": "facebook/detr-resnet-50", "dataset": "d"})
    assert (s.framework, s.task, s.main_metric) == ("huggingface", "detect", "metrics/mAP50-95(B)")
    assert parse_spec({"model": "PekingU/rtdetr_r18vd", "dataset": "d"}).task == "detect"
    assert parse_spec({"model": "facebook/detr-resnet-50", "task": "classify", "dataset": "d"}).task == "classify"
    assert parse_spec({"task": "classify", "dataset": "d"}).framework == "timm"
    assert parse_spec({"model": str(tmp_path / "m"), "dataset": "d"}).framework == "huggingface"
    with pytest.raises(SpecError, match="allow_random_ini"):
        parse_spec({"model": "a/b", "dataset": "d", "overrides": {"allow_random_inti": True}})


def test_pretrained_unreachable_says_how_to_allow_random_init(tmp_path, monkeypatch):
    from core.contracts import Callbacks, DatasetInfo, TrainContext
    from core.errors import TrainerError
    from core.spec import parse_spec
    from trainers.huggingface import train

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    folder = tiny_model("classify", tmp_path / "vit")
    spec = parse_spec({"model": str(folder), "dataset": "d", "epochs": 1, "image_size": 64})
    ctx = TrainContext(tmp_path / "w", DatasetInfo(tmp_path, "imagefolder", "classify", ["a", "b"]), Callbacks())
    with pytest.raises(TrainerError, match="pretrained=false"):
        train(spec, ctx)


@pytest.mark.parametrize("task", ["classify", "detect"])
def test_huggingface_through_flow_tracked_reported_exported(task, stack_env, tmp_path, monkeypatch):
    from tasks.dataset_ingest import ingest_sample
    from tasks.export import export_run
    from trainers.huggingface import load_checkpoint, predict

    mlruns = tmp_path / "mlruns"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlruns.as_uri())
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # mlflow 3.17 refuses file stores otherwise
    trackers = "mlflow,clearml" if task == "classify" else "mlflow"
    monkeypatch.setenv("VTP_TRACKERS", trackers)
    monkeypatch.setenv("CLEARML_OFFLINE_MODE", "1")
    monkeypatch.setenv("CLEARML_CACHE_DIR", str(tmp_path / "clearml"))
    sample = f"shapes-{task}"
    ingest_sample(sample, n_train=8, n_val=4)
    model = tiny_model(task, tmp_path / "model")
    spec = {"model": str(model), "task": task, "dataset": sample, "epochs": 2, "image_size": 64, "batch_size": 4,
            "workers": 0, "pretrained": False}
    state = run_flow(spec, stack_env["PREFECT_API_URL"])
    assert state.is_completed(), state.message
    summary = state.result()
    assert summary["spec"]["framework"] == "huggingface" and summary["epochs_completed"] == 2
    assert summary["checkpoint_uri"].endswith("/checkpoints/best")
    run_id = summary["run_id"]

    # checkpoints load back with from_pretrained and predict
    folder = Path(urlparse(summary["checkpoint_uri"]).path)
    model_, _, info = load_checkpoint(folder)
    assert info["task"] == task and info["classes"]
    assert predict(folder, [an_image(sample)], threshold=0.0)[0]

    # the report
    files = set(Storage().read_json("runs", run_id, MANIFEST)["files"])
    assert {"checkpoints/last/config.json", "checkpoints/best/vtp.json"} <= files
    assert_report(summary, stack_env["PREFECT_API_URL"])

    # MLflow: one run, params, every epoch's metrics exactly once, the checkpoint artifact
    from mlflow.tracking import MlflowClient

    client = MlflowClient(mlruns.as_uri())
    exp = client.get_experiment_by_name(f"vtp-huggingface-{task}")
    runs = client.search_runs([exp.experiment_id])
    assert len(runs) == 1 and runs[0].data.params["model"] == str(model)
    assert runs[0].data.tags["vtp.run_id"] == run_id
    key = "metrics/accuracy_top1" if task == "classify" else "metrics/mAP50-95(B)"
    history = client.get_metric_history(runs[0].info.run_id, key.replace("(", "_").replace(")", "_"))
    assert [m.step for m in history] == [1, 2]
    paths = {a.path for a in client.list_artifacts(runs[0].info.run_id, "checkpoints/best")}
    assert "checkpoints/best/config.json" in paths

    if task == "classify":  # ClearML offline: the session zip holds params, metrics and the checkpoint
        zips = glob.glob(str(tmp_path / "clearml" / "offline" / "*.zip"))
        assert len(zips) == 1
        z = zipfile.ZipFile(zips[0])
        task_json = json.loads(z.read("task.json"))
        assert str(model) in json.dumps(task_json)
        events = [json.loads(line) for line in z.read("metrics.jsonl").decode().splitlines() if line.strip()]
        flat = [e for ev in events for e in (ev if isinstance(ev, list) else [ev])]
        iters = sorted(e["iter"] for e in flat if e.get("metric") == "metrics" and e.get("variant") == "accuracy_top1")
        assert iters == [1, 2]
        assert any("artifacts/checkpoint" in n for n in z.namelist())

    # ONNX export matches PyTorch
    import onnxruntime as ort

    from tasks.export import load_for_export

    result = export_run(run_id, "onnx")
    assert result["path"] == "exports/model.onnx"
    assert "exports/model.onnx" in Storage().read_json("runs", run_id, MANIFEST)["files"]
    module, _ = load_for_export("huggingface", folder)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        ref = module(x)
    ref = ref[0] if isinstance(ref, tuple) else ref
    sess = ort.InferenceSession(str(Path(urlparse(result["uri"]).path)))
    got = sess.run(None, {"images": x.numpy()})[0]
    np.testing.assert_allclose(got, ref.numpy(), rtol=1e-3, atol=1e-4)
