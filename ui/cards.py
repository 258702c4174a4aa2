"""Markdown cards of the chat: the parsed spec, the live progress line and the result."""

from __future__ import annotations

import html
from datetime import UTC, datetime
from typing import Any

from core.escape import md_code, md_text
from core.metric_names import metric_name
from ui.client import ACTIVE
from ui.i18n import state_name, t

MAIN_METRICS = ("metrics/mAP50-95(B)", "metrics/mAP50-95(M)", "metrics/mAP50-95(P)", "metrics/mAP50-95(OBB)",
                "metrics/accuracy_top1", "val_top1", "val/top1", "top1", "val_acc", "accuracy")


def main_metric(names: list[str] | dict[str, Any]) -> str | None:
    names = list(names)
    for m in MAIN_METRICS:
        if m in names:
            return m
    for n in names:
        if "map" in n.lower() or "acc" in n.lower() or "top1" in n.lower():
            return n
    return next((n for n in names if "loss" not in n.lower() and not n.startswith("lr")), None)


def loss_value(metrics: dict[str, float]) -> float | None:
    losses = [v for k, v in metrics.items() if "loss" in k.lower() and k.lower().startswith(("train", "loss"))]
    losses = losses or [v for k, v in metrics.items() if "loss" in k.lower()]
    return sum(losses) if losses else None


def fmt(value: Any) -> str:
    if isinstance(value, bool):  # as a spec spells it (pretrained=false), not Python's True
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:.4g}"
    if value is None or value == "":
        return "—"
    return str(value)


def spec_card(reply: dict[str, Any], lang: str) -> str:
    """The parsed spec as a table, with assumptions, what is missing and problems."""
    spec = {**(reply.get("spec") or {}), **(reply.get("effective_spec") or {})}  # defaults filled in when ready
    rows = [("task", spec.get("task")), ("model", spec.get("model")), ("dataset", spec.get("dataset")),
            ("epochs", spec.get("epochs")), ("image_size", spec.get("image_size")), ("batch", spec.get("batch_size")),
            ("pretrained", spec.get("pretrained"))]
    if spec.get("extends"):
        rows.append(("extends", spec["extends"][:8]))
    for key in ("val_fraction", "max_time", "accumulate", "classes", "export"):  # shown only when asked for
        if spec.get(key) not in (None, [], ""):
            value = spec[key]
            rows.append((key, ", ".join(map(str, value)) if isinstance(value, list) else value))
    lines = [f"**{t('spec_title', lang)}**", "", f"| {t('field', lang)} | {t('value', lang)} |", "|---|---|"]
    lines += [f"| {t(k, lang)} | {md_code(fmt(v))} |" for k, v in rows]
    if reply.get("unplaced"):
        lines += ["", f"**{t('unplaced', lang)}:** " + ", ".join(md_code(w) for w in reply["unplaced"])]
    if reply.get("notes"):
        lines += ["", f"**{t('assumptions', lang)}**"] + [f"- {md_text(n)}" for n in reply["notes"]]
    if reply.get("missing"):
        lines += ["", f"**{t('missing', lang)}:** " + ", ".join(md_text(m) for m in reply["missing"])]
    if reply.get("errors"):
        lines += ["", f"**⚠ {t('problems', lang)}**"] + [f"- {md_text(e)}" for e in reply["errors"]]
    if reply.get("ready"):
        lines += ["", t("ready_hint", lang)]
    return "\n".join(lines)


def _parse(ts: str | None) -> datetime | None:
    if not ts:
        return None
    d = datetime.fromisoformat(ts.replace("Z", "+00:00"))
    return d if d.tzinfo else d.replace(tzinfo=UTC)


def duration(run: dict[str, Any], now: datetime | None = None) -> float | None:
    start = _parse(run.get("started"))
    if start is None:
        return None
    end = _parse(run.get("finished")) or now or datetime.now(UTC)
    return max(0.0, (end - start).total_seconds())


def hms(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    s = int(round(seconds))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


def last_epoch(points: list[dict[str, Any]]) -> dict[str, float]:
    if not points:
        return {}
    top = max(p["epoch"] for p in points)
    return {p["name"]: p["value"] for p in points if p["epoch"] == top}


SHORT_ID = 8  # characters of a run id shown beside its name


def short_id(run_id: str) -> str:
    """The first 8 characters of a run id (a UUID's first group): enough to tell runs apart."""
    return run_id[:SHORT_ID]


def run_name(run: dict[str, Any]) -> str:
    """The run's readable name (e.g. ``yolo11n-shapes-detect-7``), or its short id when it has none."""
    return str(run.get("name") or "").strip() or short_id(run["id"])


def run_label(run: dict[str, Any]) -> str:
    """Markdown for a run in a card or line: its readable name with the short id in code beside it,
    ``yolo11n-shapes-detect-7 (`3f2a9c1b`)``; the short id alone when the run has no name. Safe
    inside ``**bold**``."""
    name = str(run.get("name") or "").strip()
    code = md_code(short_id(run["id"]))
    return f"{md_text(name)} ({code})" if name else code


def progress_line(run: dict[str, Any], points: list[dict[str, Any]], lang: str) -> str:
    """One line of a run's progress: name, state, epochs done of total, the last epoch's loss and
    main metric, and while it runs the time left (ETA, from the mean epoch so far)."""
    total = (run.get("spec") or {}).get("epochs") or "?"
    done = run.get("epochs_done") or 0
    parts = [t("progress_run", lang, run=run_label(run), state=state_name(run["state"], lang), done=done, total=total)]
    last = last_epoch(points)
    loss = loss_value(last)
    if loss is not None:
        parts.append(f"{t('loss', lang)} {loss:.4g}")
    name = main_metric(last)
    if name:
        parts.append(f"{metric_label(name, lang)} {last[name]:.4g}")
    elapsed = duration(run)
    if elapsed and done and isinstance(total, int) and total > done and run["state"] in ACTIVE:
        parts.append(f"{t('eta', lang)} {hms(elapsed / done * (total - done))}")
    return " · ".join(parts)


def metric_label(key: str, lang: str = "en") -> str:
    """Markdown/HTML for a metric name in a card: the readable name, the raw key on hover."""
    name = metric_name(key, lang)
    if name == key:
        return f"`{key.replace('`', '')}`"
    return f'<abbr title="{html.escape(key, quote=True)}">{html.escape(name)}</abbr>'


def shown_metrics(metrics: dict[str, Any], num_classes: int | None) -> tuple[dict[str, float], list[str]]:
    """The metrics worth showing, and why any were left out: top-5 accuracy is 1 by definition
    when there are at most 5 classes."""
    out = {k: v for k, v in metrics.items() if isinstance(v, int | float) and not isinstance(v, bool)}
    hidden = []
    if num_classes is not None and num_classes <= 5:
        for k in [k for k in out if "top5" in k]:
            del out[k]
            hidden.append(k)
    return out, hidden


def hidden_top5_note(num_classes: Any, lang: str) -> str:
    """Why top-5 accuracy is not shown (:func:`shown_metrics` left it out)."""
    if lang == "ko":
        return f"top-5 정확도는 표시하지 않습니다: 클래스가 {num_classes}개뿐이라 항상 1입니다."
    return f"top-5 accuracy not shown: with {num_classes} classes it is always 1."


def best_epoch(points: list[dict[str, Any]], name: str | None) -> tuple[int, float] | None:
    """(epoch, value) where ``name`` was highest, from the run's per-epoch metric points."""
    best = None
    for p in points:
        if (p.get("name") == name and isinstance(p.get("value"), int | float)
                and (best is None or p["value"] > best[1])):
            best = (int(p["epoch"]), float(p["value"]))
    return best


def scratch_notes(run: dict[str, Any], summary: dict[str, Any], metrics: dict[str, float], lang: str,
                  stopped_early: bool = False) -> list[str]:
    """What a reader of the metrics must know first: trained from scratch (asked, or because the
    pretrained weights could not be had, with the reason from ``summary``'s notes), and that metrics
    near 0 after few epochs from random weights are expected; with ``stopped_early``, an early stop."""
    ko = lang == "ko"
    happened = []
    spec = run.get("spec") or {}
    scratch = summary.get("pretrained_used") is False
    if scratch:
        why = next((n for n in summary.get("notes") or [] if "scratch" in n), None)
        if spec.get("pretrained", True):
            happened.append(("사전 학습 가중치를 받을 수 없어 **처음부터(무작위 가중치로) 학습했습니다**" if ko else
                             "**Trained from scratch** (random initial weights): the pretrained weights could not be had")
                            + (f" — {md_text(why)}" if why else ""))
        else:
            happened.append("요청대로 처음부터 학습했습니다 (pretrained=False)." if ko else
                            "Trained from scratch, as asked (pretrained=False).")
    if stopped_early and summary.get("stopped_early"):
        happened.append("개선이 멈춰 조기 종료했습니다 (patience)." if ko else "Stopped early: the metric stopped improving (patience).")
    main = main_metric(metrics)
    main_value = metrics.get(main) if main else None
    if scratch and main_value is not None and main_value < 0.05:
        happened.append(f"무작위 가중치에서 {run.get('epochs_done')} 에폭만 학습하면 지표가 0에 가까운 것이 정상입니다 (오류가 아닙니다)."
                        if ko else f"From random weights, {run.get('epochs_done')} "
                                   f"{'epoch gives' if run.get('epochs_done') == 1 else 'epochs give'} metrics near 0: "
                                   "expected, not an error.")
    return happened


def result_card(run: dict[str, Any], lang: str, summary: dict[str, Any] | None = None,
                points: list[dict[str, Any]] | None = None) -> str:
    """The result in words and numbers: what happened (from scratch and why, early stop, best
    epoch), the final metrics with readable names (raw key on hover), and what to try next.
    ``summary`` is the run's summary.json (notes, pretrained_used, num_classes); ``points`` its
    per-epoch metrics. Both are optional: without them the card says less, never something untrue."""
    summary = summary or {}
    metrics, hidden = shown_metrics(run.get("final_metrics") or {}, summary.get("num_classes"))
    main = main_metric(metrics)
    ko = lang == "ko"
    lines = [f"**{t('result_title_run', lang, run=run_label(run))}**", ""]
    happened = scratch_notes(run, summary, metrics, lang, stopped_early=True)
    best = best_epoch(points or [], main)
    values = {p["value"] for p in points or [] if p.get("name") == main}
    if best is not None and main and len(values) > 1:
        happened.append(f"가장 좋은 에폭: {best[0]} ({metric_label(main, lang)} {best[1]:.4g}); 이 에폭의 가중치가 best.pt입니다."
                         if ko else f"Best epoch: {best[0]} ({metric_label(main, lang)} {best[1]:.4g}); best.pt holds its weights.")
    for note in summary.get("notes") or []:
        if "scratch" not in note:
            happened.append(md_text(note))
    if happened:
        lines += [f"**{'무슨 일이 있었나' if ko else 'What happened'}**", ""] + [f"- {h}" for h in happened] + [""]
    lines += [f"**{t('final_metrics', lang)}**", "", f"| {'지표' if ko else 'Metric'} | {'값' if ko else 'Value'} |",
              "|---|---|"]
    ordered = ([main] if main else []) + sorted(k for k in metrics if k != main)
    lines += [f"| {'**' + metric_label(k, lang) + '**' if k == main else metric_label(k, lang)} | {fmt(metrics[k])} |"
              for k in ordered][:12]
    if hidden:
        lines += ["", hidden_top5_note(summary.get("num_classes"), "ko" if ko else "en")]
    lines += ["", f"{t('epochs', lang)}: {run.get('epochs_done')} · {hms(duration(run))}"]
    nxt = next_steps(run.get("spec") or {}, metrics.get(main) if main else None, summary.get("pretrained_used") is False,
                     lang)
    if nxt:
        lines += ["", f"**{'다음에 해 볼 것' if ko else 'What to try next'}**", ""] + [f"- {n}" for n in nxt]
    return "\n".join(lines)


def next_steps(spec: dict[str, Any], main_value: float | None, scratch: bool, lang: str) -> list[str]:
    """Suggestions that follow from the result: longer training when from scratch or short, the
    weights folder when offline, a follow-up the chat understands."""
    ko = lang == "ko"
    epochs = spec.get("epochs") or 0
    out = []
    if scratch and spec.get("pretrained", True):
        out.append("가중치 파일을 `$VTP_WEIGHTS_DIR`(기본 `~/.vtp/weights`)에 두면 사전 학습 가중치로 시작합니다."
                   if ko else "Put the weights file in `$VTP_WEIGHTS_DIR` (default `~/.vtp/weights`) to start from "
                              "pretrained weights.")
    if (main_value is not None and main_value < 0.5) or scratch:
        more = max(10, epochs * 5)
        out.append(f"더 길게 학습해 보세요: \"이어서 {more} 에폭 더\" 또는 \"epochs만 {more}으로 다시\"." if ko else
                   f"Train longer: \"continue {more} more epochs\" or \"again with epochs {more}\".")
    return out


def failed_card(run: dict[str, Any], lang: str) -> str:
    return t("run_failed_run", lang, run=run_label(run), state=state_name(run["state"], lang),
             error=md_text(run.get("error") or "—"))
