"""The spec card shows the new fields, the words the parser could not place, and corrected values."""

from __future__ import annotations

import re
from types import SimpleNamespace

from chat import parse
from ui.cards import spec_card

REGISTRY = {"coco8": SimpleNamespace(name="coco8", task="detect")}


def test_spec_card_lists_new_fields_unplaced_words_and_corrections():
    result = parse("yolo11n coco8 100 에폭, 아니 200 에폭, val 비율 20%, 최대 1시간, person 클래스만, onnx로 export, blorptastic",
                   datasets=REGISTRY, storage_url="file:///tmp/vtp-card", use_llm=False)
    card = spec_card(result.model_dump(), "ko")
    rows = dict(re.findall(r"^\| (.+?) \| `(.*)` \|$", card, re.M))
    assert rows["검증 비율"] == "0.2" and rows["최대 학습 시간(분)"] == "60" and rows["클래스"] == "person"
    assert rows["내보내기"] == "onnx" and rows["에폭"] == "200"
    assert "이해하지 못한 말" in card and "blorptastic" in card
    assert "100 → 200" in card  # the correction, with the value taken back


def test_spec_card_without_new_fields_has_no_extra_rows():
    result = parse("train yolo11n on coco8 for 5 epochs", datasets=REGISTRY, storage_url="file:///tmp/vtp-card", use_llm=False)
    card = spec_card(result.model_dump(), "en")
    assert "Validation share" not in card and "Export" not in card and "Not understood" not in card
