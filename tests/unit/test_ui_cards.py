"""The chat's cards say what happened in words and show nothing untrue (issue 14): readable metric
names with the raw key on hover, the from-scratch explanation, no top-5 accuracy for ≤5 classes,
and a spec card equal to the spec a run would get."""

from __future__ import annotations

import re

import pytest

from ui.cards import metric_label, metric_name, result_card, spec_card

SCRATCH_NOTE = ("pretrained weights for yolo11n could not be downloaded (no network); training from scratch. "
                "Put yolo11n.pt in ~/.vtp/weights to use them.")


@pytest.mark.parametrize(("key", "en", "ko"), [
    ("metrics/mAP50-95(B)", "box mAP50-95", "박스 mAP50-95"),
    ("metrics/mAP50(M)", "mask mAP50", "마스크 mAP50"),
    ("metrics/precision(P)", "pose precision", "자세 정밀도"),
    ("metrics/recall(OBB)", "rotated box recall", "회전 박스 재현율"),
    ("metrics/accuracy_top1", "top-1 accuracy", "top-1 정확도"),
    ("val/loss", "val loss", "검증 손실"),
    ("train/box_loss", "train box loss", "학습 박스 손실"),
    ("val_acc", "val accuracy", "검증 정확도"),
    ("lr/pg0", "lr/pg0", "lr/pg0"),  # unknown: as it is
])
def test_metric_names(key, en, ko):
    assert metric_name(key) == en and metric_name(key, "ko") == ko


def test_metric_label_keeps_the_raw_key_on_hover_and_escapes_it():
    assert metric_label("metrics/mAP50-95(B)") == '<abbr title="metrics/mAP50-95(B)">box mAP50-95</abbr>'
    assert metric_label('x"><script>') == '`x"><script>`'  # unknown: a code span, inert


def _run(metrics, epochs=2, pretrained=True):
    return {"id": "abc12345", "state": "completed", "spec": {"model": "yolo11n", "epochs": epochs,
                                                           "pretrained": pretrained},
            "final_metrics": metrics, "epochs_done": epochs, "started": "2026-01-01T00:00:00",
            "finished": "2026-01-01T00:01:05"}


@pytest.mark.parametrize("lang", ["en", "ko"])
def test_zero_metrics_from_scratch_are_explained(lang):
    card = result_card(_run({"metrics/mAP50-95(B)": 0.0, "metrics/mAP50(B)": 0.0}), lang,
                       summary={"pretrained_used": False, "notes": [SCRATCH_NOTE], "num_classes": 3},
                       points=[{"name": "metrics/mAP50-95(B)", "epoch": e, "value": 0.0} for e in (1, 2)])
    if lang == "en":
        assert "Trained from scratch" in card and "could not be downloaded" in card
        assert "expected, not an error" in card and "VTP_WEIGHTS_DIR" in card and "Best epoch" not in card
    else:
        assert "처음부터" in card and "오류가 아닙니다" in card and "VTP_WEIGHTS_DIR" in card
    assert "box mAP50-95" in card or "박스 mAP50-95" in card
    assert "metrics/mAP50-95(B)</abbr>" not in card  # the raw key only in the title


def test_a_pretrained_run_is_not_called_from_scratch_and_names_its_best_epoch():
    points = [{"name": "metrics/accuracy_top1", "epoch": e, "value": v} for e, v in ((1, 0.4), (2, 0.9), (3, 0.8))]
    card = result_card(_run({"metrics/accuracy_top1": 0.8, "metrics/accuracy_top5": 1.0}, epochs=3), "en",
                       summary={"pretrained_used": True, "notes": [], "num_classes": 3}, points=points)
    assert "scratch" not in card.lower()
    assert "Best epoch: 2" in card and "0.9" in card
    assert "top-5 accuracy not shown" in card and "| 1 |" not in card


def test_top5_is_shown_with_more_than_five_classes_and_without_a_summary_nothing_is_invented():
    card = result_card(_run({"metrics/accuracy_top1": 0.5, "metrics/accuracy_top5": 0.9}), "en",
                       summary={"pretrained_used": True, "num_classes": 10})
    assert "top-5 accuracy" in card and "not shown" not in card
    bare = result_card(_run({"metrics/accuracy_top1": 0.5}), "en")
    assert "scratch" not in bare.lower() and "Best epoch" not in bare


def test_spec_card_shows_the_effective_spec():
    reply = {"spec": {"model": "yolo11n", "dataset": "shapes-detect", "task": "detect", "epochs": 2},
             "effective_spec": {"model": "yolo11n", "dataset": "shapes-detect", "task": "detect", "epochs": 2,
                                "image_size": 640, "batch_size": 16, "pretrained": True},
             "ready": True}
    card = spec_card(reply, "en")
    rows = dict(re.findall(r"^\| (.+?) \| `(.*)` \|$", card, re.M))
    assert rows["Pretrained"] == "true" and rows["Image size"] == "640" and rows["Batch"] == "16"
    assert "—" not in card


def test_prediction_numbers_say_what_they_are():
    from ui.tabs.models import predictions_text

    ranked = predictions_text({"task": "classify", "predictions": [{"class": "cat", "confidence": 0.9},
                                                                    {"class": "dog", "confidence": 0.1}]}, "en")
    assert ranked.startswith("Top classes · probability (softmax, 0–1)") and "1. **cat** 0.900" in ranked
    boxes = predictions_text({"task": "detect", "predictions": [{"class": "car", "confidence": 0.5,
                                                                 "box": [1.2, 2.6, 30, 40]}]}, "ko")
    assert boxes.startswith("객체 1개 · 신뢰도 (0–1)") and "**car** 0.500 · [1, 3, 30, 40]" in boxes
    assert predictions_text({"task": "classify", "predictions": []}) == "—"


def test_scratch_notes_say_why_metrics_read_zero():
    from ui.cards import scratch_notes

    run = {"spec": {"pretrained": True}, "epochs_done": 2}
    summary = {"pretrained_used": False, "notes": ["trained from scratch: yolo11n.pt could not be downloaded (offline)"]}
    said = scratch_notes(run, summary, {"metrics/mAP50-95(B)": 0.0}, "en")
    assert said[0].startswith("**Trained from scratch**") and "could not be downloaded" in said[0]
    assert "2 epochs give metrics near 0: expected, not an error." in said[1]
    asked = scratch_notes({"spec": {"pretrained": False}, "epochs_done": 1}, {"pretrained_used": False},
                          {"metrics/accuracy_top1": 0.6}, "ko")
    assert asked == ["요청대로 처음부터 학습했습니다 (pretrained=False)."]  # a good metric needs no excuse
    assert scratch_notes(run, {"pretrained_used": True}, {"metrics/mAP50-95(B)": 0.0}, "en") == []
