"""Export requests in the chat (issue 19): a message that asks to export, and nothing to train, is
the ``export`` intent with the formats named (the API exports the conversation's last finished run
or the run named, and checks each export); a training request that also says "export" stays a
training request with TrainSpec.export. Offline parser, both languages."""

from __future__ import annotations

import pytest

from chat import parse

EXPORTS = [
    ("onnx랑 openvino로 export해줘", ["onnx", "openvino"], []),
    ("onnx로 내보내줘", ["onnx"], []),
    ("openvino랑 ncnn으로 변환해 줘", ["openvino", "ncnn"], []),
    ("export it to ncnn", ["ncnn"], []),
    ("export to onnx and torchscript please", ["onnx", "torchscript"], []),
    ("Export the model as OpenVINO", ["openvino"], []),
    ("export 3f2a9c1e to onnx", ["onnx"], ["3f2a9c1e"]),
    ("yolo11n-shapes-detect-2 onnx로 익스포트", ["onnx"], ["yolo11n-shapes-detect-2"]),
    ("export해줘", [], []),
    ("can you export the model?", [], []),
]


@pytest.mark.parametrize(("text", "formats", "runs"), EXPORTS, ids=[t for t, _, _ in EXPORTS])
def test_export_requests(text, formats, runs):
    result = parse(text)
    assert result.intent == "export", (result.intent, result.spec)
    assert result.formats == formats and result.runs == runs
    assert result.unplaced == [] and not result.missing, (result.unplaced, result.missing)


def test_the_pending_spec_is_kept_through_an_export_request():
    first = parse("yolo11n으로 coco8 탐지 30 에폭")
    result = parse("onnx랑 openvino로 export해줘", previous=first.spec)
    assert result.intent == "export" and result.spec == first.spec and result.formats == ["onnx", "openvino"]


@pytest.mark.parametrize("text", [
    "yolo11n coco8 학습하고 onnx랑 openvino로 내보내줘",
    "train resnet18 on pets and export to openvino",
    "train yolo11n on coco8 for 5 epochs, export=onnx",
])
def test_a_training_request_that_also_exports_is_a_training_request(text):
    result = parse(text)
    assert result.intent == "new" and result.spec and result.spec["export"], result
    assert result.formats == []
