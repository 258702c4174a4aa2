"""The offline parser reads a request to compare runs in either language, picks out the runs it
names, and does not take ordinary training requests for one."""

from __future__ import annotations

import pytest

from chat import parse

PREV = {"task": "detect", "model": "yolo11n", "dataset": "shapes-detect", "epochs": 2}
DATASETS = {"shapes-detect": None, "shapes-classify": None}


def _parse(message: str, previous=PREV):
    return parse(message, previous=previous, datasets=DATASETS, storage_url="file:///tmp/vtp-storage")


@pytest.mark.parametrize("message", [
    "compare the last two runs", "Compare the last two", "compare them", "can you compare those two?",
    "which one is better?", "which run did better", "which model performed better?", "which one won?",
    "what's the difference between the two runs?", "show them side by side", "how do they compare?",
    "comparison please", "run 1 vs run 2",
    "마지막 두 실행 비교해줘", "두 개 비교", "비교해 주세요", "어느 게 더 나아?", "어떤 게 더 좋아?", "뭐가 더 나아?",
    "어느 쪽이 나아요?", "두 결과 차이 보여줘", "차이가 뭐야?", "어떤 모델이 더 잘했어?", "결과 비교 좀",
])
def test_compare_phrasings(message):
    result = _parse(message)
    assert result.intent == "compare", message
    assert result.spec["model"] == "yolo11n" and result.spec["dataset"] == "shapes-detect"  # kept, unchanged
    assert result.runs == []


@pytest.mark.parametrize("message", [
    "train yolo11n on shapes-detect for 5 epochs", "epochs만 5로 다시", "이어서 2 에폭 더", "retry that run",
    "yes, go", "cancel", "shapes-detect로 yolo11s 학습해줘", "make it better with 10 epochs",
    "use a bigger model", "what's the best image size?",
])
def test_requests_that_are_not_comparisons(message):
    assert _parse(message).intent != "compare", message


def test_runs_named_by_id_or_readable_name():
    result = _parse("compare 3f2a9c1e with yolo11n-shapes-detect-12")
    assert result.intent == "compare"
    assert result.runs == ["3f2a9c1e", "yolo11n-shapes-detect-12"]
    assert result.spec["model"] == "yolo11n"  # a run name is not read as a model change
    full = "0b5e7a51-93c2-4f1e-8d2a-1c9e0f6b7a42"
    assert _parse(f"{full} vs 12345678 어느 게 나아?").runs == [full, "12345678"]


def test_a_comparison_of_new_models_is_not_silently_one_run():
    result = _parse("yolo11n vs yolo11s on shapes-detect")
    assert result.intent == "compare" and not result.start
    assert "not available yet" in result.reply
    ko = _parse("yolo11n이랑 yolo11s 비교해서 학습해줘")
    assert ko.intent == "compare" and "아직 없습니다" in ko.reply


def test_compare_without_a_conversation_keeps_nothing_pending():
    result = _parse("compare the last two", previous=None)
    assert result.intent == "compare" and result.spec is None and not result.ready
