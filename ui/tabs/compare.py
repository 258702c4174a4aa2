"""Compare: two to six runs side by side — the spec differences and the verdict (GET /api/compare), the
main metric by epoch and the per-class metric as plots, each run's confusion matrix and PR curve, and
their checked exports (size, latency)."""

from __future__ import annotations

from typing import Any

import gradio as gr

from core.escape import md_text
from ui import cards
from ui.client import ApiError
from ui.context import Ctx, error_text
from ui.i18n import t
from ui.plots import comparison_figure

MAX_RUNS = 6


def run_choices(runs: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """Finished and unfinished runs alike (the comparison says when one has no final value)."""
    return [(f"{r.get('name') or r['spec'].get('model')} · {cards.short_id(r['id'])} · {r['state']}", r["id"])
            for r in runs]


def per_class_table(details: dict[str, Any], labels: dict[str, str], lang: str) -> str:
    per_class = details.get("per_class") or {}
    if not per_class.get("key"):
        return t("cmp_no_per_class", lang)
    runs = list(per_class["values"])
    head = "| " + " | ".join([t("cmp_class", lang), *(md_text(labels.get(r, r[:8])) for r in runs)]) + " |"
    lines = [f"**{t('cmp_per_class', lang, metric=per_class['key'])}**", "", head, "|" + "---|" * (len(runs) + 1)]
    for c in per_class["classes"]:
        cells = [per_class["values"][r].get(c) for r in runs]
        lines.append("| " + " | ".join([md_text(c), *(f"{v:.3f}" if isinstance(v, int | float) else "—"
                                                      for v in cells)]) + " |")
    return "\n".join(lines)


def exports_table(details: dict[str, Any], labels: dict[str, str], lang: str) -> str:
    rows = [(run_id, r) for run_id, found in (details.get("exports") or {}).items() for r in found
            if r.get("size_mb") is not None]
    if not rows:
        return t("cmp_no_exports", lang)
    lines = [f"**{t('cmp_exports', lang)}**", "", t("cmp_exports_head", lang), "|---|---|---|---|---|"]
    for run_id, r in rows:
        drop = "—" if r.get("drop") is None else f"{r['drop']:+.3f}"
        latency = "—" if r.get("latency_ms_p50") is None else f"{r['latency_ms_p50']:.1f}"
        lines.append(f"| {md_text(labels.get(run_id, run_id[:8]))} | {md_text(r['format'])} | {r['size_mb']:.1f} | "
                     f"{latency} | {drop} |")
    return "\n".join(lines)


def build(ctx: Ctx) -> None:
    L = ctx.labels
    with gr.Row():
        pick = L(gr.Dropdown(choices=[], multiselect=True, max_choices=MAX_RUNS, elem_id="cmp-pick", scale=4),
                 "cmp_pick")
        go = L(gr.Button(variant="primary", elem_id="cmp-go", scale=1), "cmp_go", "value")
    summary = gr.Markdown(elem_id="cmp-summary")
    plot = L(gr.Plot(elem_id="cmp-plot"), "cmp_plot")
    per_class = gr.Markdown(elem_id="cmp-per-class")
    gallery = L(gr.Gallery(columns=4, height=320, elem_id="cmp-gallery"), "cmp_gallery")
    exports = gr.Markdown(elem_id="cmp-exports")

    def load(lang: str):
        try:
            return gr.update(choices=run_choices(ctx.api.runs(limit=200)))
        except ApiError:
            return gr.update()

    def do_compare(chosen: list[str] | None, lang: str):
        chosen = list(chosen or [])
        if len(chosen) < 2:
            return t("cmp_need_two", lang), None, "", [], ""
        try:
            body = ctx.api.compare(chosen, lang)
            names = {r["id"]: r.get("name") or r["id"][:8] for r in (ctx.api.run(i) for i in chosen)}
        except ApiError as e:
            return error_text(e, lang), None, "", [], ""
        details = body.get("details") or {}
        figure = comparison_figure(details.get("curves") or {}, names, body.get("metric"), details.get("per_class"))
        shots = []
        for run_id, plots in (details.get("plots") or {}).items():
            for kind, path in plots.items():
                try:
                    shots.append((str(ctx.run_file(run_id, path)), f"{names.get(run_id, run_id[:8])} · {t('cmp_' + kind, lang)}"))
                except ApiError:
                    continue
        return (body["markdown"], figure, per_class_table(details, names, lang), shots,
                exports_table(details, names, lang))

    pick.focus(load, ctx.lang, pick)
    go.click(do_compare, [pick, ctx.lang], [summary, plot, per_class, gallery, exports])
    ctx.on_load.append((load, [ctx.lang], [pick]))
