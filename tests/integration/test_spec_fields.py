"""The TrainSpec fields of issue 17 end to end, one short flow run per framework against the real
Prefect server: ``classes`` (a subset, renumbered), ``accumulate``, ``export`` after training,
``val_fraction`` (a split vtp made is made again; a dataset's own split is kept, with a note), and
16-bit images for ultralytics (8-bit copies scaled by the dataset's bit depth)."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from PIL import Image

from tasks.storage import MANIFEST, Storage
from tests.integration.test_flow import local_path, run_flow

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _notes(summary: dict) -> str:
    return "\n".join(summary["notes"])


def test_ultralytics_classes_accumulate_export_and_its_own_val_split(stack):
    from tasks.dataset_ingest import ingest_sample
    from trainers.ultralytics.env import import_ultralytics

    ingest_sample("shapes-detect", "fields-detect", n_train=8, n_val=4)
    state = run_flow({"model": "yolo11n", "dataset": "fields-detect", "epochs": 1, "image_size": 64, "batch_size": 4,
                      "workers": 0, "pretrained": False, "classes": ["square", "circle"], "accumulate": 2,
                      "export": ["onnx", "openvino"], "val_fraction": 0.3}, stack["PREFECT_API_URL"])
    assert state.is_completed(), state.message
    summary = state.result()
    notes = _notes(summary)
    assert "classes: training on 2 of the dataset's 3 classes (square, circle)" in notes
    assert "gradient accumulation: 2 batches of 4 = 8 images per optimizer step (ultralytics nbs=8)" in notes
    assert "val_fraction=0.3 was not used: dataset fields-detect has its own validation split" in notes
    assert "exported the best checkpoint: onnx: exports/model.onnx" in notes
    assert "exported the best checkpoint: openvino: exports/model_openvino_model" in notes
    manifest = Storage().read_json("runs", summary["run_id"], MANIFEST)
    assert {"exports/model.onnx", "exports/report.json"} <= set(manifest["files"])
    assert any(f.startswith("exports/model_openvino_model/") and f.endswith(".xml") for f in manifest["files"])
    rows = Storage().read_json("runs", summary["run_id"], "exports/report.json")["rows"]
    assert [r["format"] for r in rows] == ["onnx", "openvino"] and all(r["checked"] for r in rows), rows
    # checked on the run's own view of the dataset (2 classes): the metric is the one the run reports
    assert all(r["metric"] == "metrics/mAP50-95(B)" and r["max_abs_diff"] < 1e-3 for r in rows), rows
    model = import_ultralytics().YOLO(str(local_path(summary["checkpoint_uri"])))
    assert model.names == {0: "square", 1: "circle"}
    import onnx

    onnx.checker.check_model(str(local_path(summary["checkpoint_uri"]).parents[1] / "exports/model.onnx"))


def test_timm_resplit_classes_accumulate_and_torchscript(stack, tmp_path):
    import torch

    from tasks.dataset_ingest import ingest_folder
    from tasks.samples import make_sample

    root = make_sample("shapes-classify", tmp_path / "noval", n_train=12, n_val=2, image_size=32)
    shutil.rmtree(root / "val")  # imported without a val split: vtp makes one (val_fraction 0.2)
    record = ingest_folder("fields-classify", root, task="classify")
    assert record.report["auto_split"]["val_fraction"] == 0.2  # type: ignore[attr-defined]
    state = run_flow({"model": "test_resnet", "dataset": "fields-classify", "epochs": 1, "image_size": 32,
                      "batch_size": 4, "workers": 0, "pretrained": False, "classes": ["triangle", "circle"],
                      "accumulate": 2, "export": ["torchscript"], "val_fraction": 0.5}, stack["PREFECT_API_URL"])
    assert state.is_completed(), state.message
    summary = state.result()
    notes = _notes(summary)
    assert "val_fraction=0.5: the val split vtp made at import (val_fraction 0.2) was made again" in notes
    assert "classes: training on 2 of the dataset's 3 classes (triangle, circle)" in notes
    assert "exported the best checkpoint: torchscript: exports/model.torchscript" in notes
    assert "agreement" not in notes and "metrics/accuracy_top1" in notes  # the check's metric, said with its name
    assert "gradient accumulation: 2 batches of 4 = 8 images per optimizer step" in notes
    assert summary["dataset_report"]["counts"]["val"] == summary["dataset_report"]["counts"]["train"]  # 50 %
    run = local_path(summary["checkpoint_uri"]).parents[1]
    scripted = torch.jit.load(str(run / "exports/model.torchscript"))
    assert scripted(torch.zeros(1, 3, 32, 32)).shape == (1, 2)  # two classes, not three


def test_huggingface_classes_and_accumulate(stack, tmp_path):
    from tasks.dataset_ingest import ingest_sample
    from tests.integration.test_huggingface_flow import tiny_model

    ingest_sample("shapes-classify", "fields-hf", n_train=8, n_val=4, image_size=64)
    state = run_flow({"model": str(tiny_model("classify", tmp_path / "vit")), "task": "classify",
                      "dataset": "fields-hf", "epochs": 1, "image_size": 64, "batch_size": 4, "workers": 0,
                      "pretrained": False, "classes": ["square", "triangle"], "accumulate": 2},
                     stack["PREFECT_API_URL"])
    assert state.is_completed(), state.message
    summary = state.result()
    assert "classes: training on 2 of the dataset's 3 classes (square, triangle)" in _notes(summary)
    assert "gradient accumulation: 2 batches of 4 = 8 images per optimizer step" in _notes(summary)
    import json

    config = json.loads((local_path(summary["checkpoint_uri"]) / "config.json").read_text())
    assert sorted(config["id2label"].values()) == ["square", "triangle"]


def test_ultralytics_trains_on_scaled_sixteen_bit_images(stack, tmp_path):
    from tasks.dataset_ingest import ingest_folder

    rng = np.random.default_rng(0)
    for split, n in (("train", 6), ("val", 2)):
        for c, level in (("dark", 600), ("bright", 3400)):  # 12-bit levels in 16-bit PNGs
            (tmp_path / "thermal" / split / c).mkdir(parents=True)
            for i in range(n):
                a = np.clip(rng.normal(level, 80, (32, 32)), 0, 4095).astype(np.uint16)
                Image.fromarray(a).save(tmp_path / "thermal" / split / c / f"{i}.png")
    ingest_folder("thermal", tmp_path / "thermal", task="classify")
    state = run_flow({"model": "yolo11n-cls", "dataset": "thermal", "epochs": 1, "image_size": 32, "batch_size": 4,
                      "workers": 0, "pretrained": False}, stack["PREFECT_API_URL"])
    assert state.is_completed(), state.message
    assert "16-bit images scaled from 12-bit range (0-4095 -> 0-255)" in _notes(state.result())
