"""Issue 13, item 6: values that break other components are refused by TrainSpec.

``seed=10**30`` made Prefect's flow-run listing fail ("Integer exceeds 64-bit range") for every run;
``nbs=0``, ``mask_ratio=0``, ``fraction=-5``, ``lrf=Infinity`` reached ultralytics. Every
passed-through override is checked against the range or set in its trainer's capabilities.json
(``override_ranges``), and every message names the field, the value and what is accepted.
"""

from __future__ import annotations

import json
import math

import pytest

from core import frameworks as registry
from core.errors import SpecError
from core.spec import MAX_SEED, parse_spec

YOLO = {"model": "yolo11n", "dataset": "shapes-detect"}
TIMM = {"model": "resnet18", "dataset": "shapes-classify"}


def refused(data: dict, *needles: str) -> str:
    with pytest.raises(SpecError) as e:
        parse_spec(data)
    message = str(e.value)
    for needle in needles:
        assert needle in message, (needle, message)
    return message


@pytest.mark.parametrize("seed", [10**30, 2**32, 2**63, -1])
def test_seed_outside_32_bits_is_refused(seed):
    refused({**YOLO, "seed": seed}, f"seed={seed}", "0 to 4294967295")


def test_seed_bounds_are_accepted():
    assert parse_spec({**YOLO, "seed": 0}).seed == 0
    assert parse_spec({**YOLO, "seed": MAX_SEED}).seed == MAX_SEED


@pytest.mark.parametrize(("overrides", "needles"), [
    ({"nbs": 0}, ["overrides.nbs=0", "at least 1"]),
    ({"mask_ratio": 0}, ["overrides.mask_ratio=0", "at least 1"]),
    ({"fraction": -5}, ["overrides.fraction=-5", "above 0 and at most 1"]),
    ({"fraction": 0.0}, ["overrides.fraction=0.0", "above 0"]),
    ({"fraction": 1.5}, ["overrides.fraction=1.5", "at most 1"]),
    ({"lrf": math.inf}, ["overrides.lrf=inf", "finite number"]),
    ({"lrf": -math.inf}, ["overrides.lrf=-inf", "finite number"]),
    ({"lrf": math.nan}, ["overrides.lrf=nan", "finite number"]),
    ({"lrf": 0.0}, ["overrides.lrf=0.0", "above 0"]),
    ({"momentum": 1e300}, ["overrides.momentum=1e+300"]),
    ({"close_mosaic": 10**30}, ["overrides.close_mosaic"]),
    ({"optimizer": "Adamm"}, ["overrides.optimizer='Adamm'", "AdamW", "SGD"]),
    ({"auto_augment": "x" * 1000}, ["overrides.auto_augment", "at most 100"]),
    ({"mosaic": 2.0}, ["overrides.mosaic=2.0", "at most 1"]),
])
def test_ultralytics_overrides_out_of_range_are_refused(overrides, needles):
    refused({**YOLO, "overrides": overrides}, *needles)


@pytest.mark.parametrize(("overrides", "needles"), [
    ({"label_smoothing": 1.0}, ["overrides.label_smoothing=1.0", "below 1"]),
    ({"drop_rate": -0.1}, ["overrides.drop_rate=-0.1"]),
    ({"optimizer": "adamw; rm -rf /"}, ["overrides.optimizer", "letters, digits"]),
    ({"grad_clip": math.inf}, ["overrides.grad_clip=inf", "finite"]),
])
def test_timm_overrides_out_of_range_are_refused(overrides, needles):
    refused({**TIMM, "overrides": overrides}, *needles)


def test_ordinary_overrides_still_pass():
    spec = parse_spec({**YOLO, "overrides": {"nbs": 64, "mask_ratio": 4, "fraction": 1.0, "lrf": 0.01, "mosaic": 0.0,
                                             "optimizer": "adamw", "cos_lr": True, "close_mosaic": 0, "freeze": 0}})
    assert spec.overrides["optimizer"] == "AdamW"  # ultralytics' own spelling
    assert parse_spec({**TIMM, "overrides": {"optimizer": "lamb", "label_smoothing": 0.1, "drop_path_rate": 0}}).overrides


def test_json_infinity_through_the_api_body_is_refused():
    body = json.loads('{"model": "yolo11n", "dataset": "d", "overrides": {"lrf": Infinity}}')
    refused(body, "overrides.lrf=inf")


def test_every_numeric_override_has_a_range():
    for caps in registry.all_capabilities():
        numeric = {k for k, kind in caps.overrides.items() if kind in ("int", "float")}
        assert numeric <= set(caps.override_ranges), (caps.framework, numeric - set(caps.override_ranges))
        assert set(caps.override_ranges) <= set(caps.overrides), caps.framework
        for key, rule in caps.override_ranges.items():
            if caps.overrides[key] == "str":
                assert "choices" in rule or "pattern" in rule, (caps.framework, key)
