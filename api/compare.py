"""Comparing runs side by side: "compare the last two", "어느 게 더 나아?", ``GET /api/runs/compare``.

A comparison says which run is better only when the numbers mean the same thing: both runs finished
with the same main metric (``TrainSpec.main_metric``, e.g. ``metrics/mAP50-95(B)`` for detection) on the
same dataset. Otherwise it shows the numbers and says why it names no winner. Every metric is named
in words with its raw key beside it, and every value is a fraction in 0..1 as the trainer reported it.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from api.errors import ApiError, NotFound
from api.models import MetricPoint, Run
from core.metric_names import metric_name

TIE = 1e-4  # differences below this are reported as equal (metrics are fractions in 0..1)
MAX_RUNS = 6  # a table wider than this is not readable in a chat bubble

TEXT: dict[str, dict[str, str]] = {
    "title": {"en": "Comparison of {n} runs", "ko": "실행 {n}개 비교"},
    "run": {"en": "run", "ko": "실행"}, "model": {"en": "model", "ko": "모델"},
    "dataset": {"en": "dataset", "ko": "데이터셋"}, "epochs": {"en": "epochs done", "ko": "완료한 에폭"},
    "image_size": {"en": "image size (px)", "ko": "이미지 크기 (px)"},
    "pretrained": {"en": "started from", "ko": "시작 가중치"},
    "pretrained_yes": {"en": "pretrained weights", "ko": "사전학습 가중치"},
    "pretrained_no": {"en": "scratch (random)", "ko": "처음부터 (무작위)"},
    "state": {"en": "state", "ko": "상태"},
    "final": {"en": "{metric}, final", "ko": "{metric}, 최종"},
    "best": {"en": "best epoch ({metric})", "ko": "최고 에폭 ({metric})"},
    "duration": {"en": "duration", "ko": "소요 시간"},
    "other": {"en": "other differences", "ko": "그 밖의 차이"},
    "better": {"en": "**{winner}** is better on {metric}: {a} vs {b} ({diff:+.4f}).",
               "ko": "{metric} 기준으로 **{winner}**이(가) 더 좋습니다: {a} 대 {b} ({diff:+.4f})."},
    "best_of": {"en": "**{winner}** has the highest {metric}: {value}.",
                "ko": "{metric}이(가) 가장 높은 실행은 **{winner}**입니다: {value}."},
    "tie": {"en": "They are equal on {metric} ({a}).", "ko": "{metric}은(는) 같습니다 ({a})."},
    "not_finished": {"en": "{run} has not completed ({state}): it has no final {metric} to compare.",
                     "ko": "{run}은(는) 완료되지 않아({state}) 비교할 최종 {metric}이(가) 없습니다."},
    "other_metric": {"en": "The runs are measured by different metrics ({metrics}): no winner can be named.",
                     "ko": "실행마다 지표가 달라({metrics}) 어느 쪽이 낫다고 할 수 없습니다."},
    "other_data": {"en": "The runs used different datasets ({datasets}): their numbers are not comparable.",
                   "ko": "실행마다 데이터셋이 달라({datasets}) 숫자를 서로 비교할 수 없습니다."},
    "all_zero": {"en": "{run} scored 0: with weights that could not be downloaded a model trains from scratch, "
                       "and a few epochs are not enough to find anything; train longer or make the weights available.",
                 "ko": "{run}의 점수는 0입니다: 가중치를 받을 수 없으면 처음부터 학습하며, 몇 에폭으로는 아무것도 찾지 "
                       "못합니다. 더 오래 학습하거나 가중치를 준비해 주세요."},
    "units": {"en": "Values are fractions from 0 to 1 as the trainer reported them on the validation split; "
                    "higher is better.",
              "ko": "값은 학습기가 검증 세트에서 보고한 0~1 사이의 비율이며, 높을수록 좋습니다."},
    "need_two": {"en": "There is nothing to compare yet: a comparison needs two runs, and {have}.",
                 "ko": "아직 비교할 것이 없습니다: 실행이 두 개 필요한데 {have}."},
    "have_none": {"en": "no run has been started", "ko": "시작한 실행이 없습니다"},
    "have_one": {"en": "only {run} exists so far", "ko": "지금은 {run} 하나뿐입니다"},
    "from_ledger": {"en": "This conversation started {n} run(s); the others are the newest in the run list.",
                    "ko": "이 대화에서 시작한 실행은 {n}개라, 나머지는 실행 목록의 최신 실행으로 채웠습니다."},
    "unknown_run": {"en": "no run is called {ref}: give a run's id (its first 8 characters are enough) or its name",
                    "ko": "{ref}라는 실행은 없습니다: 실행 ID(앞 8자리로 충분합니다)나 이름을 알려 주세요"},
    "ambiguous_run": {"en": "{ref} matches {n} runs: give more characters of the id",
                      "ko": "{ref}에 해당하는 실행이 {n}개입니다: ID를 더 길게 알려 주세요"},
}


STATES_KO = {"queued": "대기 중", "pending": "시작 중", "running": "학습 중", "completed": "완료", "failed": "실패",
             "cancelled": "취소됨", "crashed": "비정상 종료"}  # as the web app names them (ui/i18n.py)


def state_name(state: str, lang: str) -> str:
    return STATES_KO.get(state, state) if lang == "ko" else state


def say(lang: str, key: str, /, **kwargs: Any) -> str:
    return TEXT[key]["ko" if lang == "ko" else "en"].format(**kwargs)


@dataclass
class Comparison:
    """Runs side by side. ``rows``: (label, one value per run) as shown; ``winner``: the better run's id,
    or None when no winner can be named (``reasons`` says why)."""

    runs: list[Run]
    metric: str | None
    rows: list[tuple[str, list[str]]] = field(default_factory=list)
    winner: str | None = None
    verdict: list[str] = field(default_factory=list)
    markdown: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"runs": [r.id for r in self.runs], "metric": self.metric, "winner": self.winner,
                "rows": [{"label": label, "values": values} for label, values in self.rows],
                "verdict": self.verdict, "markdown": self.markdown}


def find_run(session: Session, ref: str, lang: str = "en") -> Run:
    """A run by its id, an id prefix of at least 8 characters, or its readable name.

    Raises NotFound (no such run) or ApiError (a prefix that matches several)."""
    ref = ref.strip().lower()
    run = session.get(Run, ref)
    if run is not None:
        return run
    run = session.scalars(select(Run).where(Run.name == ref)).first()
    if run is not None:
        return run
    if len(ref) >= 8:
        matches = list(session.scalars(select(Run).where(Run.id.startswith(ref, autoescape=True)).limit(3)))
        if len(matches) == 1:
            return matches[0]
        if matches:
            raise ApiError(say(lang, "ambiguous_run", ref=ref, n=len(matches) if len(matches) < 3 else "3+"))
    raise NotFound(say(lang, "unknown_run", ref=ref[:80]))


def label(run: Run) -> str:
    """How a run is named to people: its readable name when it has one, else its short id."""
    return run.name or run.id[:8]


def compare(session: Session, runs: list[Run], lang: str = "en") -> Comparison:
    """``runs`` (two to MAX_RUNS, oldest first as given) side by side, with a verdict in ``lang``."""
    from core.errors import SpecError
    from core.spec import parse_spec

    runs = runs[:MAX_RUNS]
    metrics: list[str | None] = []
    for run in runs:
        try:
            metrics.append(parse_spec(dict(run.spec)).main_metric)
        except (SpecError, KeyError, ValueError):
            metrics.append(None)
    metric = metrics[0] if metrics and len(set(metrics)) == 1 else None
    cmp = Comparison(runs=runs, metric=metric)
    shown = metric or next((m for m in metrics if m), None)
    readable = f"{metric_name(shown, lang)} (`{shown}`)" if shown else "—"
    finals = [_final(run, m) for run, m in zip(runs, metrics, strict=True)]
    bests = [_best(session, run, m) for run, m in zip(runs, metrics, strict=True)]
    cmp.rows = [
        (say(lang, "run"), [f"`{run.id[:8]}` {run.name or ''}".strip() for run in runs]),
        (say(lang, "model"), [str(run.spec.get("model") or "—") for run in runs]),
        (say(lang, "dataset"), [str(run.spec.get("dataset") or "—") for run in runs]),
        (say(lang, "epochs"), [f"{run.epochs_done}/{run.spec.get('epochs') or '?'}" for run in runs]),
        (say(lang, "image_size"), [str(run.spec.get("image_size") or "—") for run in runs]),
        (say(lang, "pretrained"), [say(lang, "pretrained_no" if run.spec.get("pretrained") is False else "pretrained_yes")
                                   for run in runs]),
        (say(lang, "state"), [state_name(run.state, lang) for run in runs]),
        (say(lang, "final", metric=readable), [_fmt(v) for v in finals]),
        (say(lang, "best", metric=metric_name(shown, lang) if shown else "—"),
         [f"{e} ({_fmt(v)})" if e is not None else "—" for e, v in bests]),
        (say(lang, "duration"), [_duration(run.started, run.finished) for run in runs]),
    ]
    other = _other_differences(runs)
    if other:
        cmp.rows.append((say(lang, "other"), [", ".join(f"{k}={run.spec.get(k)}" for k in other) for run in runs]))
    cmp.verdict = _verdict(runs, metrics, finals, lang, cmp)
    head = "| " + " | ".join(["", *(label(r) for r in runs)]) + " |"
    rule = "|" + "---|" * (len(runs) + 1)
    body = ["| " + " | ".join([_cell(name), *(_cell(v) for v in values)]) + " |" for name, values in cmp.rows]
    cmp.markdown = "\n".join([f"**{say(lang, 'title', n=len(runs))}**", "", head, rule, *body, "",
                              *cmp.verdict, "", say(lang, "units")])
    return cmp


def _verdict(runs: list[Run], metrics: list[str | None], finals: list[float | None], lang: str,
             cmp: Comparison) -> list[str]:
    lines = []
    datasets = sorted({str(r.spec.get("dataset")) for r in runs})
    name = metric_name(cmp.metric, lang) if cmp.metric else ""
    for run, value in zip(runs, finals, strict=True):
        if run.state != "completed" or value is None:
            lines.append(say(lang, "not_finished", run=label(run), state=state_name(run.state, lang),
                             metric=name or ("지표" if lang == "ko" else "metric")))
        elif value == 0:
            lines.append(say(lang, "all_zero", run=label(run)))
    if cmp.metric is None:
        lines.insert(0, say(lang, "other_metric", metrics=", ".join(sorted({m or "?" for m in metrics}))))
        return lines
    if len(datasets) > 1:
        lines.insert(0, say(lang, "other_data", datasets=", ".join(datasets)))
        return lines
    scored = [(v, r) for v, r in zip(finals, runs, strict=True) if v is not None and r.state == "completed"]
    if len(scored) < 2:
        return lines
    scored.sort(key=lambda vr: vr[0], reverse=True)
    (top, best), (second, _) = scored[0], scored[1]
    if top - second < TIE:
        lines.insert(0, say(lang, "tie", metric=name, a=_fmt(top)))
    elif len(runs) == 2:
        other = scored[1][0]
        cmp.winner = best.id
        lines.insert(0, say(lang, "better", winner=label(best), metric=name, a=_fmt(top), b=_fmt(other), diff=top - other))
    else:
        cmp.winner = best.id
        lines.insert(0, say(lang, "best_of", winner=label(best), metric=name, value=_fmt(top)))
    return lines


def _final(run: Run, metric: str | None) -> float | None:
    value = (run.final_metrics or {}).get(metric) if metric else None
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _best(session: Session, run: Run, metric: str | None) -> tuple[int | None, float | None]:
    """(epoch, value) of the highest main-metric point the run reported, or (None, None)."""
    if not metric:
        return None, None
    point = session.scalars(select(MetricPoint).where(MetricPoint.run_id == run.id, MetricPoint.name == metric)
                            .order_by(MetricPoint.value.desc(), MetricPoint.epoch).limit(1)).first()
    return (point.epoch, point.value) if point is not None else (None, None)


def _other_differences(runs: list[Run]) -> list[str]:
    shown = {"model", "dataset", "epochs", "image_size", "pretrained", "task", "framework", "extends"}
    keys = sorted({k for r in runs for k in r.spec} - shown)
    return [k for k in keys if len({repr(r.spec.get(k)) for r in runs}) > 1]


def _fmt(value: float | None) -> str:
    return "—" if value is None else f"{value:.4f}"


def _duration(started: datetime | None, finished: datetime | None) -> str:
    if started is None or finished is None:
        return "—"
    seconds = max(0, int((finished - started).total_seconds()))
    return f"{seconds // 3600}h {seconds % 3600 // 60}m" if seconds >= 3600 else f"{seconds // 60}m {seconds % 60:02d}s"


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def need_two(runs: list[Run], lang: str) -> str:
    have = say(lang, "have_none") if not runs else say(lang, "have_one", run=label(runs[0]))
    return say(lang, "need_two", have=have)


__all__ = ["Comparison", "compare", "find_run", "label", "need_two", "say"]


PER_CLASS_KEYS = ("AP50-95", "mAP50-95", "Box-mAP50-95", "Mask-mAP50-95", "Pose-mAP50-95", "accuracy")
PLOTS = {  # what each plot is -> the artifact names the trainers write (ultralytics' own, then vtp's)
    "confusion_matrix": ("artifacts/confusion_matrix_normalized.png", "artifacts/confusion_matrix.png"),
    "pr_curve": ("artifacts/BoxPR_curve.png", "artifacts/MaskPR_curve.png", "artifacts/PosePR_curve.png",
                 "artifacts/PR_curve.png"),
}


def details(session: Session, runs: list[Run], settings: Any) -> dict[str, Any]:
    """What a comparison view plots, per run (keyed by run id), read from the ledger and storage:

    - ``curves``: the main metric at each epoch, ``[{"epoch", "value"}]`` (fractions 0..1);
    - ``per_class``: ``{"key", "classes", "values": {run: {class: value}}}`` from each run's
      ``per_class.json`` — ``key`` is the per-class metric they all have (AP50-95 for detection, accuracy
      for classification: :data:`PER_CLASS_KEYS`), None when they share none;
    - ``plots``: ``{run: {"confusion_matrix": path, "pr_curve": path}}`` (artifact paths, for
      ``GET /api/runs/{id}/artifacts/{path}``; absent when the run has none);
    - ``exports``: ``{run: [rows of exports/report.json]}`` (size MB, latency ms p50, metric and drop).
    """
    from core.contracts import PER_CLASS
    from tasks.export import REPORT
    from tasks.storage import MANIFEST, Storage

    storage = Storage(settings=settings)
    out: dict[str, Any] = {"curves": {}, "plots": {}, "exports": {}}
    tables: dict[str, list[dict[str, Any]]] = {}
    for run in runs:
        metric = None
        with contextlib.suppress(Exception):
            from core.spec import parse_spec

            metric = parse_spec(dict(run.spec)).main_metric
        points = session.scalars(select(MetricPoint).where(MetricPoint.run_id == run.id, MetricPoint.name == metric)
                                 .order_by(MetricPoint.epoch)) if metric else []
        out["curves"][run.id] = [{"epoch": p.epoch, "value": p.value} for p in points]
        files = (storage.read_json("runs", run.id, MANIFEST) or {}).get("files") or {}
        out["plots"][run.id] = {kind: next(p for p in names if p in files)
                                for kind, names in PLOTS.items() if any(p in files for p in names)}
        out["exports"][run.id] = (storage.read_json("runs", run.id, REPORT) or {}).get("rows", [])
        if f"artifacts/{PER_CLASS}" in files:
            tables[run.id] = (storage.read_json("runs", run.id, "artifacts", PER_CLASS) or {}).get("rows") or []
    every = len(tables) == len(runs)  # a run without an evaluation report: nothing per class to set beside it
    key = next((k for k in PER_CLASS_KEYS if every and all(any(k in row for row in rows) for rows in tables.values())),
               None)
    classes: list[str] = []
    for rows in tables.values():
        classes += [str(r.get("class")) for r in rows if str(r.get("class")) not in classes and r.get("class") != "all"]
    out["per_class"] = {"key": key, "classes": classes if key else [],
                        "values": {rid: {str(r.get("class")): r.get(key) for r in rows if r.get("class") != "all"}
                                   for rid, rows in tables.items()} if key else {}}
    return out
