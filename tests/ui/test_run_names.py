"""The readable run name beside the short id in every place the web app names a run (runs table,
run picker, models dropdown, progress line, result and failure cards), and the short id alone for
a run without a name."""

from __future__ import annotations

from ui import cards
from ui.tabs import models, runs

RUN_ID = "3f2a9c1b-0d4e-4a51-9a7e-0c1d2e3f4a5b"


def _run(name: str | None = "yolo11n-shapes-detect-7", **over) -> dict:
    run = {"id": RUN_ID, "state": "running", "epochs_done": 1, "started": "2026-11-30T10:00:00Z",
           "spec": {"model": "yolo11n", "dataset": "shapes-detect", "epochs": 3}, "final_metrics": None,
           "checkpoint_uri": None, "error": None}
    if name is not None:
        run["name"] = name
    return {**run, **over}


def test_label_is_the_name_beside_the_short_id_or_the_short_id_alone():
    assert cards.short_id(RUN_ID) == "3f2a9c1b"
    assert cards.run_label(_run()) == "yolo11n-shapes-detect-7 (`3f2a9c1b`)"
    assert cards.run_label(_run(None)) == cards.run_label(_run("")) == "`3f2a9c1b`"
    assert cards.run_name(_run()) == "yolo11n-shapes-detect-7" and cards.run_name(_run(None)) == "3f2a9c1b"
    assert "\\*" in cards.run_label(_run("a*b"))  # a name is text, never Markdown


def test_progress_line_and_cards_name_the_run():
    for lang, word in (("en", "Run yolo11n-shapes-detect-7 (`3f2a9c1b`) — running · epoch 1/3"),
                       ("ko", "실행 yolo11n-shapes-detect-7 (`3f2a9c1b`) — 학습 중 · 에폭 1/3")):
        assert cards.progress_line(_run(), [], lang).startswith(word)
    assert cards.progress_line(_run(None), [], "en").startswith("Run `3f2a9c1b` — running")
    assert "ETA" in cards.progress_line(_run(), [], "en")
    assert "ETA" not in cards.progress_line(_run(state="cancelled"), [], "en")  # an ended run has no time left
    done = _run(state="completed", final_metrics={"metrics/mAP50-95(B)": 0.5}, finished="2026-11-30T10:01:00Z")
    assert cards.result_card(done, "en").startswith("**Result of run yolo11n-shapes-detect-7 (`3f2a9c1b`)**")
    assert cards.result_card(done, "ko").startswith("**실행 yolo11n-shapes-detect-7 (`3f2a9c1b`) 결과**")
    failed = cards.failed_card(_run(None, state="failed", error="CUDA out of memory"), "en")
    assert failed == "Run `3f2a9c1b` ended **failed**: CUDA out of memory"


def test_runs_table_and_picker_show_names():
    rows = runs.table_rows([_run(), _run(None, id="0000aaaa-rest")], "en")
    assert rows[0][:3] == [RUN_ID, "yolo11n-shapes-detect-7", "running"]  # the full id first: a click picks it
    assert rows[1][:3] == ["0000aaaa-rest", "0000aaaa", "running"]
    assert len(rows[0]) == len(runs.t("cols").split("|")) == len(runs.t("cols", "ko").split("|"))
    assert runs.pick_choices([_run(), _run(None)]) == [("yolo11n-shapes-detect-7 · 3f2a9c1b", RUN_ID),
                                                       (RUN_ID, RUN_ID)]


def test_models_dropdown_names_the_run():
    done = {"state": "completed", "checkpoint_uri": "file:///x/best.pt", "final_metrics": {"metrics/mAP50-95(B)": 0.5}}
    found = models.choices([_run(**done), _run(None, **done), _run()])  # the running one has no model yet
    assert [label for label, _ in found] == ["yolo11n-shapes-detect-7 · 3f2a9c1b · box mAP50-95 0.500",
                                             "yolo11n · shapes-detect · 3f2a9c1b · box mAP50-95 0.500"]
