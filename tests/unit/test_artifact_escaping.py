"""Issue 13, item 8: HTML and links from user data are inert in every artifact vtp writes.

A class name like ``[x](javascript:alert(1))`` or ``<img src=x onerror=...>`` (from a dataset's
``names:``) reaches the per-class table artifact and the Markdown train report in Prefect. Rendered
with a CommonMark renderer (GFM tables on), no link, image or HTML element may come out of it.
"""

from __future__ import annotations

import json
from html.parser import HTMLParser

import pytest
from markdown_it import MarkdownIt

from core.escape import md_code, md_text
from tasks.progress import report_markdown
from tasks.report import publish_prefect_tables

HOSTILE = [
    "[x](javascript:alert(1))",
    "[x](http://evil.example/phish)",
    "<img src=x onerror=alert(1)>",
    "![i](http://evil.example/t.png)",
    "<script>alert(1)</script>",
    "a|b` `<b>c</b>",
    "<javascript:alert(1)>",
    "**bold** _it_ ~~s~~",
    "line\nbreak <a href='x'>y</a>",
]
render = MarkdownIt("commonmark").enable("table").render


SAFE_TAGS = {"p", "h1", "h2", "strong", "code", "ul", "li", "table", "thead", "tbody", "tr", "th", "td"}


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.found: list[tuple[str, list]] = []

    def handle_starttag(self, tag, attrs):
        self.found.append((tag, attrs))


def inert(html: str) -> None:
    """Only the elements vtp's own Markdown makes, and no attribute (no link, image, handler)."""
    parser = _Tags()
    parser.feed(html)
    for tag, attrs in parser.found:
        assert tag in SAFE_TAGS and all(name == "style" for name, _ in attrs), (tag, attrs, html)


@pytest.mark.parametrize("name", HOSTILE)
def test_md_text_renders_as_the_same_text(name):
    html = render(f"| class |\n|---|\n| {md_text(name)} |\n")
    inert(html)
    assert html.count("<td>") == 1  # a "|" in the name did not split the cell


@pytest.mark.parametrize("name", HOSTILE)
def test_md_code_cannot_leave_its_span(name):
    html = render(f"| v |\n|---|\n| {md_code(name)} |\n")
    inert(html)
    assert html.count("<td>") == 1 and html.count("<code>") == 1


def test_per_class_table_artifact_escapes_class_names(tmp_path, monkeypatch):
    import prefect.artifacts

    (tmp_path / "artifacts").mkdir()
    rows = [{"class": name, "instances": 3, "AP50": 0.5, "AP50-95": None} for name in HOSTILE]
    (tmp_path / "artifacts" / "per_class.json").write_text(json.dumps({"task": "detect", "rows": rows}))
    published = {}
    monkeypatch.setattr(prefect.artifacts, "create_table_artifact",
                        lambda table, key, description: published.update(table=table, key=key, description=description))
    assert publish_prefect_tables(tmp_path, "run-1")
    assert published["key"] == "per-class-metrics"
    table = published["table"]
    assert [r["instances"] for r in table] == [3] * len(HOSTILE) and table[0]["AP50-95"] is None  # numbers kept
    for row in table:
        cell = row["class"]
        assert "<" not in cell and "](" not in cell and "\n" not in cell
        inert(render(f"| class |\n|---|\n| {cell} |\n"))


def test_train_report_escapes_names_notes_and_spec_values():
    evil = "[x](javascript:alert(1))<img src=x onerror=alert(1)>"
    summary = {
        "run_id": "run-1",
        "spec": {"task": "detect", "model": "yolo11n", "framework": "ultralytics", "epochs": 3, "dataset": evil + "`|"},
        "dataset": {"name": evil},
        "epochs_completed": 3,
        "duration_s": 12.0,
        "checkpoint_uri": "file:///srv/vtp/storage/runs/run-1/checkpoints/best.pt",
        "metrics": {evil: 0.5, "metrics/mAP50-95(B)": 0.31},
        "notes": [f"class {evil} has no labels"],
    }
    text = report_markdown(summary)
    html = render(text)
    inert(html)
    assert summary["checkpoint_uri"] in text  # the checkpoint still reads as it is (tests/integration/reports.py)
    assert "mAP50-95" in html
