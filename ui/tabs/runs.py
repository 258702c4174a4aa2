"""Runs: a table that refreshes itself; the selected run's metrics, log tail, Cancel and Retry."""

from __future__ import annotations

from typing import Any

import gradio as gr

from core.escape import md_text
from ui import cards
from ui.client import ACTIVE, ApiError
from ui.context import Ctx, error_text
from ui.i18n import state_name, t
from ui.plots import metrics_figure

REFRESH_S = 2.0


def table_rows(runs: list[dict[str, Any]], lang: str = "en") -> list[list[Any]]:
    rows = []
    for r in runs:
        spec = r.get("spec") or {}
        final = r.get("final_metrics") or {}
        name = cards.main_metric(final)
        metric = (f"{cards.metric_name(name)} {final[name]:.4g}" if name and isinstance(final.get(name), int | float)
                  else "")
        started = (r.get("started") or r.get("created") or "")[:19].replace("T", " ")
        rows.append([r["id"], state_name(r["state"], lang), spec.get("model", ""), spec.get("dataset", ""),
                     f"{r.get('epochs_done') or 0}/{spec.get('epochs', '?')}", metric, started,
                     cards.hms(cards.duration(r))])
    return rows


def build(ctx: Ctx) -> None:
    L = ctx.labels
    timer = gr.Timer(REFRESH_S)
    table = L(gr.Dataframe(headers=t("cols").split("|"), interactive=False, elem_id="runs-table", wrap=True,
                           max_height=320), "cols")
    with gr.Row():
        pick = L(gr.Dropdown(choices=[], elem_id="run-pick", allow_custom_value=True, scale=3), "run")
        cancel = L(gr.Button(variant="stop", elem_id="run-cancel", scale=1), "cancel", "value")
        retry = L(gr.Button(elem_id="run-retry", scale=1), "retry", "value")
    notice = gr.Markdown(elem_id="run-notice")  # what Cancel/Retry did: the auto-refresh leaves it alone
    status = gr.Markdown(elem_id="run-status")
    plot = L(gr.Plot(elem_id="run-plot"), "metrics_plot")
    logs = L(gr.Textbox(lines=10, max_lines=14, elem_id="run-logs", autoscroll=True), "logs")

    def refresh(selected: str | None, lang: str):
        try:
            runs = ctx.api.runs()
        except ApiError as e:
            return gr.update(), gr.update(), error_text(e, lang), gr.update(), gr.update(), gr.update(), gr.update()
        ids = [r["id"] for r in runs]
        detail = details(selected, lang) if selected else (gr.update(),) * 5
        return table_rows(runs, lang), gr.update(choices=ids), *detail

    def actions(state: str | None):
        """Cancel only while a run can still be stopped, Retry only once it has ended."""
        live = state in ACTIVE
        return (gr.update(interactive=live, variant="stop" if live else "secondary"),
                gr.update(interactive=state is not None and not live))

    def details(run_id: str | None, lang: str):
        if not run_id:
            return ("", None, "", *actions(None))
        try:
            run = ctx.api.run(run_id)
            points = ctx.api.metrics(run_id)
        except ApiError as e:
            return (error_text(e, lang), None, "", *actions(None))
        try:
            lines = ctx.api.logs(run_id)
            log_text = "\n".join(f"{ln.get('timestamp', '')[11:19]} {ln.get('level', '')} {ln.get('message', '')}"
                                 for ln in lines)
        except ApiError as e:
            log_text = str(e)
        head = cards.progress_line(run, points, lang)
        if run.get("error"):
            head += f"\n\n**{t('error_label', lang)}:** {md_text(run['error'])}"
        link = ctx.prefect_link(run, lang)
        return (head + (f"\n\n{link}" if link else ""), metrics_figure(points, run["id"]), log_text,
                *actions(run["state"]))

    timer.tick(refresh, [pick, ctx.lang], [table, pick, status, plot, logs, cancel, retry], show_progress="hidden")
    pick.change(details, [pick, ctx.lang], [status, plot, logs, cancel, retry], show_progress="hidden")
    pick.input(lambda: "", None, notice, show_progress="hidden")  # another run picked by hand: its notice goes

    def on_select(evt: gr.SelectData):
        return gr.update(value=evt.row_value[0]) if evt.row_value else gr.update()

    table.select(on_select, None, pick)

    def do_cancel(run_id: str | None, lang: str) -> str:
        if not run_id:
            return ""
        try:
            ctx.api.cancel(run_id)
            return t("cancel_sent", lang, id=run_id)
        except ApiError as e:
            return error_text(e, lang)

    def do_retry(run_id: str | None, lang: str):
        if not run_id:
            return gr.update(), ""
        try:
            new = ctx.api.retry(run_id)
            return gr.update(value=new["id"]), t("retried", lang, id=new["id"])
        except ApiError as e:
            return gr.update(), error_text(e, lang)

    cancel.click(do_cancel, [pick, ctx.lang], notice)
    retry.click(do_retry, [pick, ctx.lang], [pick, notice])
