"""Every export format each framework offers on this CPU, checked against PyTorch (issue 19 item 1):
the export loads back in its runtime and matches the checkpoint within a stated tolerance; int8
reports its metric drop; a format or option that cannot be made says why, as a row, never a
traceback. Tiny models trained for one epoch on generated data (their metrics are near zero: the
equivalence is shown by the largest output difference and by identical top-1 classes).

Tolerances (largest absolute difference of the raw outputs, fp32 formats): ultralytics' decoded
predictions (box coordinates in pixels and class scores) 1e-3; timm and Hugging Face logits 1e-3.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tasks.export import describe_row, export_and_check
from tests.integration.test_huggingface_flow import tiny_model
from tests.integration.test_trainers import SIZE, Recorder, _context, _spec

pytestmark = [pytest.mark.integration, pytest.mark.slow]
TOL = 1e-3


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """{framework: (spec as JSON, best checkpoint, what the check reads: data.yaml or the folder)}."""
    from tasks.samples import make_sample
    from trainers.huggingface import train as hf_train
    from trainers.timm import train as timm_train
    from trainers.ultralytics import train as yolo_train

    base = tmp_path_factory.mktemp("exports")
    detect = make_sample("shapes-detect", base / "det", n_train=8, n_val=4, image_size=SIZE)
    classify = make_sample("shapes-classify", base / "cls", n_train=8, n_val=6, image_size=SIZE)
    out = {}
    vit = str(tiny_model("classify", base / "vit"))
    for name, fn, root, task, model in (("ultralytics", yolo_train, detect, "detect", "yolo11n"),
                                        ("timm", timm_train, classify, "classify", "resnet18"),
                                        ("huggingface", hf_train, classify, "classify", vit)):
        spec = _spec(model, task=task, batch_size=4)
        ctx = _context(root, task, base / name, Recorder())
        result = fn(spec, ctx)
        data = Path(ctx.dataset.data_yaml) if ctx.dataset.data_yaml else Path(ctx.dataset.root)
        out[name] = (spec.model_dump(mode="json"), result.best_checkpoint, data)
    return out


@pytest.mark.parametrize(("framework", "fmt"), [
    ("ultralytics", "onnx"), ("ultralytics", "torchscript"), ("ultralytics", "openvino"), ("ultralytics", "ncnn"),
    ("timm", "onnx"), ("timm", "torchscript"), ("timm", "openvino"),
    ("huggingface", "onnx"), ("huggingface", "openvino"),
])
def test_each_format_loads_back_and_matches_pytorch(trained, tmp_path, framework, fmt):
    spec, checkpoint, data = trained[framework]
    row = export_and_check(spec, checkpoint, fmt, tmp_path, data)
    assert row["checked"] and row["error"] is None, row
    assert (tmp_path / row["path"]).exists() and row["size_mb"] > 0.01
    assert row["max_abs_diff"] is not None and row["max_abs_diff"] < TOL, describe_row(row)
    assert row["latency_ms_p50"] > 0
    assert row["metric"] == {"ultralytics": "metrics/mAP50-95(B)"}.get(framework, "metrics/accuracy_top1")
    assert abs(row["drop"]) < 1e-9 and row["value"] == pytest.approx(row["reference"]), row
    if framework != "ultralytics":
        assert row["agreement"] == 1.0 and row["images"] == 6  # every val image, the same top-1 class
    assert f"{fmt}: {row['path']}" in describe_row(row) and "ms/image (p50)" in describe_row(row)


def test_int8_reports_its_metric_drop(trained, tmp_path):
    """OpenVINO int8 through ultralytics' exporter (NNCF post-training quantization, calibrated on
    the dataset's images): checked like any export; its drop and output difference are reported."""
    spec, checkpoint, data = trained["ultralytics"]
    row = export_and_check(spec, checkpoint, "openvino", tmp_path, data, {"int8": True})
    assert row["checked"] and row["path"] == "exports/model-int8_openvino_model", row
    assert isinstance(row["drop"], float) and row["max_abs_diff"] > 0  # quantized: not bit-identical
    assert row["options"] == ["int8"] and "drop" in describe_row(row)
    fp32 = export_and_check(spec, checkpoint, "openvino", tmp_path, data)
    assert row["size_mb"] < fp32["size_mb"] / 2, (row["size_mb"], fp32["size_mb"])  # int8 weights


@pytest.mark.parametrize(("framework", "fmt", "options", "says"), [
    ("ultralytics", "torchscript", {"half": True}, "FP16 TorchScript export is only supported on GPU"),
    ("ultralytics", "coreml", {}, "is not an export format of ultralytics: use onnx or torchscript or openvino or ncnn"),
    ("timm", "ncnn", {}, "is not an export format of timm: use onnx or torchscript or openvino"),
    ("timm", "onnx", {"int8": True}, "export options int8 are not offered for onnx exports of this framework"),
    ("ultralytics", "onnx", {"bogus": True}, "export options bogus are unknown: use half, int8, dynamic"),
])
def test_a_format_that_cannot_be_made_says_why(trained, tmp_path, framework, fmt, options, says):
    spec, checkpoint, data = trained[framework]
    row = export_and_check(spec, checkpoint, fmt, tmp_path, data, options)
    assert not row["checked"] and row.get("size_mb") is None and says in row["error"], row
    assert "Traceback" not in row["error"] and describe_row(row).startswith(f"{fmt}") and "failed" in describe_row(row)


def test_an_export_whose_check_cannot_run_is_kept_and_says_so(trained, tmp_path):
    spec, checkpoint, _ = trained["timm"]
    row = export_and_check(spec, checkpoint, "onnx", tmp_path, tmp_path / "no-such-dataset")
    assert row["size_mb"] > 0 and not row["checked"]
    assert row["error"].startswith("exported, but not checked:") and "no val/ folder" in row["error"], row
