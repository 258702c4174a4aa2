"""``vtp chat eval FILE.jsonl``: score the chat parser on labelled requests.

One JSON object per line (blank lines and lines starting with ``#`` are skipped)::

    {"text": "yolo11n으로 coco8 50에폭", "expect": {"model": "yolo11n", "epochs": 50}, "expect_missing": []}

- ``expect``: spec fields (``model``, ``epochs``, ``pretrained``, ``export``, ``classes``, ``overrides`` ...) and
  optionally ``intent`` and ``unplaced`` (the list of words the parser could not place). A value of
  ``null`` means the field must be absent.
- ``expect_missing`` (optional): the fields still needed (``dataset``, ``task``), compared as a set.
- ``previous`` (optional): the spec of the turn before, for follow-ups ('now 100 epochs').
- ``datasets`` (optional): the registered datasets for that line, a list of names, ``{name: task}`` or
  ``{name: {"task": task, "classes": [names], "versions": [{"version": 1, "hash": ...}]}}``; without it the line sees :data:`EVAL_DATASETS`.

A request is exact when every expected field and the missing list match; field accuracy counts each
expected field (and the missing list, when given) separately.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

EVAL_DATASETS: dict[str, str] = {"coco8": "detect", "flowers": "classify", "pets": "classify", "shapes-detect": "detect",
                                 "shapes-segment": "segment", "coco8-pose": "pose", "dota8": "obb"}
_STORAGE = "file:///tmp/vtp-chat-eval"


@dataclass
class Miss:
    """One expected field the parser got wrong (``field`` is 'missing' for the missing list)."""

    text: str
    field: str
    expected: Any
    got: Any


@dataclass
class EvalReport:
    """Counts over a labelled set: requests (``n``), exact ones, expected fields and right ones, the misses."""

    n: int = 0
    exact: int = 0
    fields: int = 0
    fields_ok: int = 0
    misses: list[Miss] = field(default_factory=list)

    @property
    def request_exact(self) -> float:
        return self.exact / self.n if self.n else 0.0

    @property
    def field_accuracy(self) -> float:
        return self.fields_ok / self.fields if self.fields else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {"n": self.n, "request_exact": round(self.request_exact, 4), "field_accuracy": round(self.field_accuracy, 4),
                "misses": [m.__dict__ for m in self.misses]}


def load_cases(path: str | Path) -> list[dict[str, Any]]:
    """The labelled lines of ``path``. Raises OSError when it cannot be read and ValueError naming the
    line when one is not a JSON object with a string ``text`` and an object ``expect``."""
    cases = []
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            case = json.loads(line)
        except json.JSONDecodeError as e:
            raise ValueError(f"line {number} is not JSON ({e.msg}): write one object per line") from None
        if not isinstance(case, dict) or not isinstance(case.get("text"), str) or not isinstance(case.get("expect", {}), dict):
            raise ValueError(f"line {number}: expected {{\"text\": str, \"expect\": {{...}}, \"expect_missing\": [...]}}")
        cases.append(case)
    return cases


def _registry(case: dict[str, Any]) -> dict[str, Any]:
    names = case.get("datasets", EVAL_DATASETS)
    if isinstance(names, list):
        names = {name: None for name in names}
    return {name: SimpleNamespace(name=name, task=info.get("task"), classes=list(info.get("classes") or []),
                                  versions=list(info.get("versions") or []))
            if isinstance(info, dict) else SimpleNamespace(name=name, task=info, classes=[])
            for name, info in names.items()}


def _same(expected: Any, got: Any) -> bool:
    if isinstance(expected, float) or isinstance(got, float):
        return isinstance(got, (int, float)) and isinstance(expected, (int, float)) and math.isclose(expected, got, rel_tol=1e-6)
    if isinstance(expected, dict) and isinstance(got, dict):
        return expected.keys() == got.keys() and all(_same(v, got[k]) for k, v in expected.items())
    return expected == got


def score(cases: list[dict[str, Any]], *, use_llm: bool = False) -> EvalReport:
    """Parse every case (offline, or the configured LLM endpoint with ``use_llm``) and compare."""
    from chat.parser import parse

    report = EvalReport()
    for case in cases:
        result = parse(case["text"], previous=case.get("previous"), datasets=_registry(case), storage_url=_STORAGE,
                       use_llm=use_llm)
        spec = result.spec or {}
        got_of = {"intent": result.intent, "unplaced": result.unplaced, "ready": result.ready}
        ok = True
        checks = [(k, v, got_of[k] if k in got_of else spec.get(k)) for k, v in case.get("expect", {}).items()]
        if "expect_missing" in case:
            checks.append(("missing", sorted(case["expect_missing"]), sorted(result.missing)))
        for name, expected, got in checks:
            report.fields += 1
            if _same(expected, got):
                report.fields_ok += 1
            else:
                ok = False
                report.misses.append(Miss(case["text"], name, expected, got))
        report.n += 1
        report.exact += ok
    return report


def format_report(report: EvalReport) -> str:
    """The misses, one per line, then the figures; the last line is machine-readable."""
    lines = [f"MISS {m.field}: expected {m.expected!r}, got {m.got!r} -- {m.text}" for m in report.misses]
    lines.append(f"{report.n} requests: {report.exact} exact ({report.request_exact:.1%}), "
                 f"fields {report.fields_ok}/{report.fields} ({report.field_accuracy:.1%})")
    lines.append(f"request_exact={report.request_exact:.3f} field_accuracy={report.field_accuracy:.3f} n={report.n}")
    return "\n".join(lines)
