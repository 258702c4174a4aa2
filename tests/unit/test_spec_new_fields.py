"""TrainSpec's val_fraction, accumulate, classes and export (issue 17): what each accepts, the
spellings the CLI's key=value gives, and what a refusal says to do."""

from __future__ import annotations

import pytest

from cli.main import parse_assignments
from core.errors import SpecError
from core.spec import parse_spec


def test_cli_spellings_become_the_fields():
    spec = parse_spec(parse_assignments(["model=yolo11n", "dataset=x", "classes=person, car", "export=ONNX,torchscript",
                                         "accumulate=4", "val_fraction=0.1"]))
    assert (spec.classes, spec.export, spec.accumulate, spec.val_fraction) == (["person", "car"],
                                                                               ["onnx", "torchscript"], 4, 0.1)
    plain = parse_spec({"model": "resnet18", "dataset": "x"})
    assert (plain.classes, plain.export, plain.accumulate, plain.val_fraction) == (None, [], None, None)


@pytest.mark.parametrize(("fields", "words"), [
    ({"val_fraction": 0.7}, "val_fraction=0.7 is not allowed: use a share above 0 and at most 0.5"),
    ({"val_fraction": 0}, "val_fraction=0"),
    ({"val_fraction": float("nan")}, "val_fraction=nan"),
    ({"accumulate": 0}, "accumulate=0 is not allowed: use a whole number of batches from 1 to 64"),
    ({"accumulate": 65}, "from 1 to 64"),
    ({"classes": []}, "classes should list 1 to"),
    ({"classes": ["a", "a"]}, "classes lists a more than once"),
    ({"classes": [3]}, "classes should be a list of class names"),
    ({"export": ["tflite"]}, "export='tflite' is not an export format of timm: use onnx or torchscript or openvino"),
    ({"export": ["onx"]}, "Did you mean"),
])
def test_refusals_say_what_to_do(fields, words):
    with pytest.raises(SpecError, match=None) as e:
        parse_spec({"model": "resnet18", "dataset": "x", **fields})
    assert words in str(e.value)


def test_accumulate_and_nbs_together_are_refused():
    with pytest.raises(SpecError, match="accumulate and overrides.nbs both set"):
        parse_spec({"model": "yolo11n", "dataset": "x", "accumulate": 2, "overrides": {"nbs": 32}})
    assert parse_spec({"model": "yolo11n", "dataset": "x", "overrides": {"nbs": 32}}).overrides == {"nbs": 32}
