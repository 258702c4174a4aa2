"""`vtp chat eval`: scoring the parser on a labelled file, and the shipped set it must pass."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from chat.eval import format_report, load_cases, score

SHIPPED = Path(__file__).resolve().parents[1] / "data" / "chat_eval.jsonl"


def test_the_shipped_set_is_large_and_the_offline_parser_passes_it():
    cases = load_cases(SHIPPED)
    assert len(cases) >= 150
    report = score(cases)
    assert report.n == len(cases)
    assert report.request_exact >= 0.98, format_report(report)
    assert report.field_accuracy >= 0.98


def test_the_shipped_set_covers_every_kind_in_both_languages():
    cases = load_cases(SHIPPED)
    expected_keys = {k for c in cases for k in c["expect"]}
    assert {"pretrained", "val_fraction", "max_time", "accumulate", "classes", "export", "unplaced", "overrides"} <= expected_keys
    korean = [c for c in cases if any("가" <= ch <= "힣" for ch in c["text"])]
    assert len(korean) >= 50 and len(cases) - len(korean) >= 50
    assert any("previous" in c for c in cases) and any("datasets" in c for c in cases)


def test_misses_are_counted_and_printed(tmp_path):
    path = tmp_path / "set.jsonl"
    lines = [{"text": "train yolo11n on coco8 for 50 epochs", "expect": {"model": "yolo11n", "epochs": 50}, "expect_missing": []},
             {"text": "train yolo11n on coco8 for 50 epochs", "expect": {"model": "yolo11s", "epochs": 50}},
             {"text": "yolo11n으로 탐지", "expect": {"dataset": None}, "expect_missing": ["dataset"]}]
    path.write_text("# a comment\n\n" + "\n".join(json.dumps(x, ensure_ascii=False) for x in lines), encoding="utf-8")
    report = score(load_cases(path))
    assert (report.n, report.exact, report.fields, report.fields_ok) == (3, 2, 7, 6)
    assert [(m.field, m.expected, m.got) for m in report.misses] == [("model", "yolo11s", "yolo11n")]
    text = format_report(report)
    assert "MISS model: expected 'yolo11s', got 'yolo11n'" in text
    assert text.splitlines()[-1] == "request_exact=0.667 field_accuracy=0.857 n=3"


def test_a_bad_line_names_its_number(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"text": "ok", "expect": {}}\nnot json\n', encoding="utf-8")
    with pytest.raises(ValueError, match="line 2"):
        load_cases(path)


def test_cli_chat_eval_and_plain_chat(tmp_path, monkeypatch):
    from cli.main import app

    path = tmp_path / "set.jsonl"
    path.write_text(json.dumps({"text": "train yolo11n on coco8", "expect": {"model": "yolo11n"}}) + "\n", encoding="utf-8")
    runner = CliRunner()
    out = runner.invoke(app, ["chat", "eval", str(path)])
    assert out.exit_code == 0, out.output
    assert out.output.strip().splitlines()[-1] == "request_exact=1.000 field_accuracy=1.000 n=1"
    as_json = runner.invoke(app, ["chat", "eval", str(path), "--json"])
    assert json.loads(as_json.output)["request_exact"] == 1.0
    assert runner.invoke(app, ["chat", "evaluate", str(path)]).exit_code == 2
    assert runner.invoke(app, ["chat", "eval", str(tmp_path / "absent.jsonl")]).exit_code == 2

    for var in ("VTP_LLM_BASE_URL", "VTP_LLM_MODEL"):
        monkeypatch.delenv(var, raising=False)
    no_llm = runner.invoke(app, ["chat", "eval", str(path), "--llm"])
    assert no_llm.exit_code == 2 and "VTP_LLM_BASE_URL" in no_llm.output

    import chat.terminal

    called = []
    monkeypatch.setattr(chat.terminal, "chat_loop", lambda settings: called.append(settings) or 0)
    assert runner.invoke(app, ["chat"]).exit_code == 0 and len(called) == 1
