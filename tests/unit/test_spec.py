"""TrainSpec inference, defaults and the messages people see for bad values."""

from __future__ import annotations

import pytest

from core.errors import SpecError
from core.spec import TrainSpec, parse_spec


@pytest.mark.parametrize(
    ("given", "task", "framework", "model"),
    [
        ({"model": "yolo11n"}, "detect", "ultralytics", "yolo11n"),
        ({"model": "YOLO11n.pt"}, "detect", "ultralytics", "yolo11n"),
        ({"model": "yolov8s-seg"}, "segment", "ultralytics", "yolov8s-seg"),
        ({"model": "yolo11m-pose"}, "pose", "ultralytics", "yolo11m-pose"),
        ({"model": "yolo11x-obb"}, "obb", "ultralytics", "yolo11x-obb"),
        ({"model": "yolo11l-cls"}, "classify", "ultralytics", "yolo11l-cls"),
        ({"model": "yolo11s", "task": "segment"}, "segment", "ultralytics", "yolo11s-seg"),
        ({"model": "yolo11s", "task": "classify"}, "classify", "ultralytics", "yolo11s-cls"),
        ({"model": "resnet50"}, "classify", "timm", "resnet50"),
        ({"model": "efficientnet_b0"}, "classify", "timm", "efficientnet_b0"),
        ({"model": "resnet50.a1_in1k"}, "classify", "timm", "resnet50.a1_in1k"),
        ({"task": "detect"}, "detect", "ultralytics", "yolo11n"),
        ({"task": "segment"}, "segment", "ultralytics", "yolo11n-seg"),
        ({"task": "pose"}, "pose", "ultralytics", "yolo11n-pose"),
        ({"task": "obb"}, "obb", "ultralytics", "yolo11n-obb"),
        ({"task": "classify"}, "classify", "timm", "resnet18"),
        ({"task": "classify", "framework": "ultralytics"}, "classify", "ultralytics", "yolo11n-cls"),
    ],
)
def test_inference_and_defaults(given, task, framework, model):
    spec = parse_spec({"dataset": "shapes", **given})
    assert (spec.task, spec.framework, spec.model) == (task, framework, model)
    assert spec.image_size == (640 if framework == "ultralytics" else 224)


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ({"model": "yolo11q"}, ["model='yolo11q'", "Did you mean", "yolo11"]),
        ({"model": "resnt50"}, ["model='resnt50'", "resnet50"]),
        ({"model": "yolo11s-seg", "task": "detect"}, ["task='detect'", "segment model", "model='yolo11s'"]),
        ({"model": "resnet50", "task": "detect"}, ["task='detect'", "timm", "yolo11n"]),
        ({"model": "yolo11n", "framework": "timm"}, ["framework='timm'", "ultralytics"]),
        ({"model": "yolo11n", "epochs": 0}, ["epochs=0", "1 to 10000"]),
        ({"model": "yolo11n", "epochs": 1_000_000}, ["epochs=1000000"]),
        ({"model": "yolo11n", "batch_size": 0}, ["batch_size=0"]),
        ({"model": "yolo11n", "image_size": 100}, ["image_size=100", "multiple of 32", "96 or 128"]),
        ({"model": "yolo11n", "image_size": 16}, ["image_size=16", "32 to 4096"]),
        ({"model": "resnet18", "image_size": 5000}, ["image_size=5000", "32 to 1024"]),
        ({"model": "yolo11n", "overrides": {"mosiac": 0.5}}, ["overrides.mosiac", "mosaic"]),
        ({"model": "yolo11n", "overrides": {"epochs": 3}}, ["overrides.epochs", "field"]),
        ({"model": "yolo11n", "overrides": {"mosaic": "lots"}}, ["overrides.mosaic", "float"]),
        ({"model": "yolo11n", "epoch": 3}, ["epoch is not a TrainSpec field", "epochs"]),
        ({"model": "yolo11n", "device": "gpu please"}, ["device=", "cuda"]),
        ({"model": "yolo11n", "learning_rate": -1}, ["learning_rate=-1"]),
        ({"model": "yolo11n", "dataset": "http://169.254.169.254/latest"}, ["dataset=", "s3://"]),
        ({"model": "yolo11n", "dataset": "../../etc"}, ["dataset="]),
        ({}, ["task is missing"]),
    ],
)
def test_bad_values_name_field_and_fix(given, expected):
    data = {"dataset": "shapes", **given}
    with pytest.raises(SpecError) as err:
        parse_spec(data)
    for fragment in expected:
        assert fragment in str(err.value), str(err.value)


def test_missing_dataset_is_named():
    with pytest.raises(SpecError, match="dataset is required"):
        parse_spec({"model": "yolo11n"})


def test_overrides_accepted_and_round_trip():
    spec = parse_spec({"model": "yolo11n", "dataset": "s3://bucket/data", "overrides": {"mosaic": 0.0, "cos_lr": True}})
    again = TrainSpec.model_validate(spec.model_dump())
    assert again == spec
    assert spec.main_metric == "metrics/mAP50-95(B)"


@pytest.mark.parametrize(
    ("config", "folder", "task"),
    [
        ({"architectures": ["ViTForImageClassification"], "model_type": "vit"}, "detr-finetuned", "classify"),
        ({"architectures": ["ConditionalDetrForObjectDetection"], "model_type": "conditional_detr"}, "my-model", "detect"),
        ({"architectures": ["RTDetrForObjectDetection"], "model_type": "rt_detr"}, "plain", "detect"),
        ({"model_type": "conditional_detr"}, "plain", "detect"),  # a config saved without architectures
        ({"model_type": "vit"}, "plain", "classify"),
    ],
)
def test_huggingface_local_folder_task_from_config(tmp_path, config, folder, task):
    """A local model folder's config.json says what it is, whatever the folder is called."""
    import json

    model = tmp_path / folder
    model.mkdir()
    (model / "config.json").write_text(json.dumps(config))
    spec = parse_spec({"model": str(model), "dataset": "d"})
    assert (spec.framework, spec.task, spec.model) == ("huggingface", task, str(model))


def test_huggingface_folder_without_config_falls_back_to_its_name(tmp_path):
    assert parse_spec({"model": str(tmp_path / "detr-small"), "dataset": "d"}).task == "detect"
    assert parse_spec({"model": str(tmp_path / "vit-small"), "dataset": "d"}).task == "classify"
