"""Markdown cards of the chat: the parsed spec, the live progress line and the result."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from core.escape import md_text
from ui.i18n import t

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
    if isinstance(value, float):
        return f"{value:.4g}"
    if value is None or value == "":
        return "—"
    return str(value)


def spec_card(reply: dict[str, Any], lang: str) -> str:
    """The parsed spec as a table, with assumptions, what is missing and problems."""
    spec = reply.get("spec") or {}
    rows = [("task", spec.get("task")), ("model", spec.get("model")), ("dataset", spec.get("dataset")),
            ("epochs", spec.get("epochs")), ("image_size", spec.get("image_size")), ("batch", spec.get("batch_size")),
            ("pretrained", spec.get("pretrained"))]
    lines = [f"**📋 {t('spec_title', lang)}**", "", "| | |", "|---|---|"]
    lines += [f"| {t(k, lang)} | `{fmt(v)}` |" for k, v in rows]
    if reply.get("notes"):
        lines += ["", f"**{t('assumptions', lang)}**"] + [f"- {n}" for n in reply["notes"]]
    if reply.get("missing"):
        lines += ["", f"**{t('missing', lang)}:** " + ", ".join(reply["missing"])]
    if reply.get("errors"):
        lines += ["", f"**⚠️ {t('problems', lang)}**"] + [f"- {e}" for e in reply["errors"]]
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


def progress_line(run: dict[str, Any], points: list[dict[str, Any]], lang: str) -> str:
    total = (run.get("spec") or {}).get("epochs") or "?"
    done = run.get("epochs_done") or 0
    parts = [t("progress", lang, id=run["id"], state=run["state"], done=done, total=total)]
    last = last_epoch(points)
    loss = loss_value(last)
    if loss is not None:
        parts.append(f"{t('loss', lang)} {loss:.4g}")
    name = main_metric(last)
    if name:
        parts.append(f"{name} {last[name]:.4g}")
    elapsed = duration(run)
    if elapsed and done and isinstance(total, int) and total > done:
        parts.append(f"{t('eta', lang)} {hms(elapsed / done * (total - done))}")
    return "⏳ " + " · ".join(parts)


def result_card(run: dict[str, Any], lang: str) -> str:
    metrics = run.get("final_metrics") or {}
    lines = [f"**✅ {t('result_title', lang, id=run['id'])}**", "", f"**{t('final_metrics', lang)}**", "",
             "| | |", "|---|---|"]
    main = main_metric(metrics)
    ordered = ([main] if main else []) + sorted(k for k in metrics if k != main)
    lines += [f"| {'**' + k + '**' if k == main else k} | {fmt(metrics[k])} |" for k in ordered
              if isinstance(metrics[k], int | float)][:12]
    lines += ["", f"{t('epochs', lang)}: {run.get('epochs_done')} · {hms(duration(run))}"]
    return "\n".join(lines)


def failed_card(run: dict[str, Any], lang: str) -> str:
    return t("run_failed", lang, id=run["id"], state=run["state"], error=md_text(run.get("error") or "—"))
