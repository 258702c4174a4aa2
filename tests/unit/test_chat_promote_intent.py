"""Promotion requests in the chat (issue 19 item 3): a message that puts a finished run in the model
registry, and asks nothing to train, is the ``promote`` intent with the model name, aliases, runs
and shipped export it names; Korean stage words become their English alias (and the reply says
so); a training request that mentions a stage stays a training request and says nothing is promoted
yet; ordinary edits ("epoch 좀 올려줘") are not promotions. Offline parser, both languages."""

from __future__ import annotations

import pytest

from chat import parse

# text, registry name, aliases, runs, formats
PROMOTIONS = [
    ("이 모델 production으로 올려줘", None, ["production"], [], []),
    ("이 모델 프로덕션으로 올려줘", None, ["production"], [], []),
    ("스테이징으로 올려줘", None, ["staging"], [], []),
    ("이 모델 승격해줘", None, [], [], []),
    ("운영 모델로 올려줘", None, ["production"], [], []),
    ("yolo11n-shapes-detect-3 운영으로 승격해줘", None, ["production"], ["yolo11n-shapes-detect-3"], []),
    ("forklift-detector라는 이름으로 모델 등록해줘, 별칭은 canary", "forklift-detector", ["canary"], [], []),
    ("이 실행을 forklift 모델로 등록해줘", "forklift", [], [], []),
    ("forklift-detector로 승격하고 production 달아줘", "forklift-detector", ["production"], [], []),
    ("production alias로 지정해줘", None, ["production"], [], []),
    ("별칭 canary로 모델 등록해줘", None, ["canary"], [], []),
    ("promote this model to production", None, ["production"], [], []),
    ("promote it to staging as forklift-detector", "forklift-detector", ["staging"], [], []),
    ("Promote it to Production", None, ["production"], [], []),
    ("register the last run as model forklift with alias prod", "forklift", ["prod"], [], []),
    ("mark it as staging", None, ["staging"], [], []),
    ("tag this as production please", None, ["production"], [], []),
    ("promote yolo11n-shapes-detect-2 to prod", None, ["prod"], ["yolo11n-shapes-detect-2"], []),
    ("promote 3f2a9c1e", None, [], ["3f2a9c1e"], []),
    ("promote 3f2a9c1e with its onnx export to production", None, ["production"], ["3f2a9c1e"], ["onnx"]),
    ("promote it with alias canary", None, ["canary"], [], []),
    ("promote it as forklift-detector-2 to staging", "forklift-detector-2", ["staging"], [], []),
    ("put this run in the model registry named pallet-finder", "pallet-finder", [], [], []),
    ("move production to this run", None, ["production"], [], []),
]


@pytest.mark.parametrize(("text", "name", "aliases", "runs", "formats"), PROMOTIONS, ids=[p[0] for p in PROMOTIONS])
def test_promotion_requests(text, name, aliases, runs, formats):
    result = parse(text)
    assert result.intent == "promote", (result.intent, result.spec, result.reply)
    assert (result.registry_name, result.aliases, result.runs, result.formats) == (name, aliases, runs, formats)
    assert result.unplaced == [] and not result.missing, (result.unplaced, result.reply)


def test_korean_stage_words_are_said_to_become_english_aliases():
    assert "'운영'은(는) 별칭 production(으)로 읽었습니다." in parse("운영으로 올려줘").reply
    assert "별칭 staging" in parse("스테이징으로 승격").reply
    assert parse("production으로 올려줘").reply == ""  # nothing translated: nothing said


def test_the_best_run_is_asked_for():
    assert parse("promote the best run to production").best is True
    assert parse("제일 좋은 모델 production으로 올려줘").best is True
    assert parse("promote it to production").best is False


def test_the_pending_spec_is_kept_through_a_promotion():
    first = parse("yolo11n으로 coco8 탐지 30 에폭")
    result = parse("이 모델 production으로 올려줘", previous=first.spec)
    assert result.intent == "promote" and result.spec == first.spec and result.aliases == ["production"]


@pytest.mark.parametrize("text", [
    "train yolo11n on coco8 and promote it to production",
    "yolo11n으로 coco8 학습하고 production으로 올려줘",
])
def test_a_training_request_that_also_promotes_is_a_training_request_and_says_so(text):
    result = parse(text)
    assert result.intent == "new" and result.spec and result.spec["model"] == "yolo11n", result
    assert "production" in result.reply and ("nothing is promoted" in result.reply or "등록하지 않습니다" in result.reply)


@pytest.mark.parametrize("text", ["epoch 좀 올려줘", "이미지 크기 올려줘", "train yolo11n on coco8 for production use",
                                  "batch 올려서 다시"])
def test_edits_that_raise_a_number_are_not_promotions(text):
    previous = parse("yolo11n으로 coco8 탐지 30 에폭").spec
    assert parse(text, previous=previous).intent != "promote"
