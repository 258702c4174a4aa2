"""Readable run names (issue 15): the model and dataset parts people recognise, whatever form the
spec names them in."""

from __future__ import annotations

import pytest

from api.crud import NAME_BASE_MAX, run_name_base


@pytest.mark.parametrize(("model", "dataset", "base"), [
    ("yolo11n", "shapes-detect", "yolo11n-shapes-detect"),
    ("yolo11n-seg", "s3://bucket/prefix/coco8-seg", "yolo11n-seg-coco8-seg"),
    ("facebook/detr-resnet-50", "shapes-detect", "detr-resnet-50-shapes-detect"),  # a hub id: its name
    ("/tmp/pytest-of-root/x/vit/", "shapes-classify", "vit-shapes-classify"),  # a local folder: its name
    ("test_resnet", "file:///data/My Photos", "test-resnet-my-photos"),
    ("vit_base_patch16_224.augreg_in21k", "pets", "vit-base-patch16-224.augreg-in21k-pets"),
])
def test_name_base(model, dataset, base):
    assert run_name_base({"model": model, "dataset": dataset}) == base


def test_name_base_is_bounded_and_clean():
    base = run_name_base({"model": "m" * 200, "dataset": "d" * 200})
    assert len(base) <= NAME_BASE_MAX and not base.endswith(("-", "."))
    assert run_name_base({}) == "run-data"
