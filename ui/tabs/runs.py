"""Runs: the table of runs; the picked run followed live over the API's WebSocket (its progress,
metrics, log tail, Cancel and Retry), with no poll timer."""

from __future__ import annotations

import time
from typing import Any

import gradio as gr
from gradio.context import Context

from core.escape import md_code, md_text
from ui import cards
from ui.client import ACTIVE, ApiError, RunUpdate
from ui.context import Ctx, error_text
from ui.i18n import state_name, t
from ui.plots import metrics_figure

HEARTBEAT_S = 5.0  # the follower's quiet yield: duration and ETA tick, a closed page is noticed
LOGS_S = 10.0  # the log tail of a running run is re-read at most this often between events


def table_rows(runs: list[dict[str, Any]], lang: str = "en") -> list[list[Any]]:
    """Rows of the runs table: id, readable name (the short id when the run has none), state,
    model, dataset, epochs done/total, main final metric, start time (UTC), duration."""
    rows = []
    for r in runs:
        spec = r.get("spec") or {}
        final = r.get("final_metrics") or {}
        name = cards.main_metric(final)
        metric = (f"{cards.metric_name(name)} {final[name]:.4g}" if name and isinstance(final.get(name), int | float)
                  else "")
        started = (r.get("started") or r.get("created") or "")[:19].replace("T", " ")
        rows.append([r["id"], cards.run_name(r), state_name(r["state"], lang), spec.get("model", ""),
                     spec.get("dataset", ""), f"{r.get('epochs_done') or 0}/{spec.get('epochs', '?')}", metric, started,
                     cards.hms(cards.duration(r))])
    return rows


def pick_choices(runs: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """The run picker's (label, run id) pairs: the readable name beside the short id."""
    return [(f"{r['name']} · {cards.short_id(r['id'])}" if r.get("name") else r["id"], r["id"]) for r in runs]


def build(ctx: Ctx) -> None:
    L = ctx.labels
    tab = Context.block  # the Runs tab itself (built inside it): selecting it re-reads the table
    table = L(gr.Dataframe(headers=t("cols").split("|"), interactive=False, elem_id="runs-table", wrap=True,
                           max_height=320), "cols")
    with gr.Row():
        pick = L(gr.Dropdown(choices=[], elem_id="run-pick", allow_custom_value=True, scale=3), "run")
        cancel = L(gr.Button(variant="stop", elem_id="run-cancel", scale=1), "cancel", "value")
        retry = L(gr.Button(elem_id="run-retry", scale=1), "retry", "value")
        refresh = L(gr.Button(elem_id="runs-refresh", scale=1), "refresh", "value")
    notice = gr.Markdown(elem_id="run-notice")  # what Cancel/Retry did: following the run leaves it alone
    status = gr.Markdown(elem_id="run-status")
    plot = L(gr.Plot(elem_id="run-plot"), "metrics_plot")
    logs = L(gr.Textbox(lines=10, max_lines=14, elem_id="run-logs", autoscroll=True), "logs")
    following = gr.State(None)  # (run id, language) of the run followed now; a change restarts the follower

    def listing(lang: str):
        """(table, picker) from the API; the picker's value is left alone."""
        try:
            runs = ctx.api.runs()
        except ApiError as e:
            gr.Warning(error_text(e, lang))
            return gr.skip(), gr.skip()
        return table_rows(runs, lang), gr.update(choices=pick_choices(runs))

    def actions(state: str | None):
        """Cancel only while a run can still be stopped, Retry only once it has ended."""
        live = state in ACTIVE
        return (gr.update(interactive=live, variant="stop" if live else "secondary"),
                gr.update(interactive=state is not None and not live))

    def log_tail(run_id: str) -> str:
        try:
            lines = ctx.api.logs(run_id)
        except ApiError as e:
            return str(e)
        return "\n".join(f"{ln.get('timestamp', '')[11:19]} {ln.get('level', '')} {ln.get('message', '')}"
                         for ln in lines)

    def headline(update: RunUpdate, lang: str) -> str:
        run = update.run
        head = cards.progress_line(run, update.points, lang)
        if run.get("error"):
            head += f"\n\n**{t('error_label', lang)}:** {md_text(run['error'])}"
        head += f"\n\n{t('run_id', lang)}: {md_code(run['id'])}"
        if update.via == "poll" and not update.ended:
            head += f" · _{t('polling', lang)}_"
        link = ctx.prefect_link(run, lang)
        return head + (f"\n\n{link}" if link else "")

    def follow(key: tuple[str, str] | None):
        """The followed run's details as they change: (table, picker, status, plot, logs, cancel,
        retry) for each update of the run's WebSocket; ends with the run, or when the page goes."""
        if not key:
            yield gr.skip(), gr.skip(), "", None, "", *actions(None)
            return
        run_id, lang = key
        skip = (gr.skip(),) * 7
        shown_points: list[dict[str, Any]] | None = None
        logs_read = 0.0
        try:
            for update in ctx.api.follow(run_id, heartbeat_s=HEARTBEAT_S):
                if update.changed:
                    table_and_pick = listing(lang)  # the other runs' rows catch up too, once per event
                    plot_out = (metrics_figure(update.points, cards.run_name(update.run))
                                if update.points != shown_points or shown_points is None else gr.skip())
                    shown_points, logs_read = update.points, time.monotonic()
                    yield (*table_and_pick, headline(update, lang), plot_out, log_tail(run_id),
                           *actions(update.run["state"]))
                elif not update.ended:  # quiet: the ETA ticks; the log tail now and then
                    fresh_logs = gr.skip()
                    if time.monotonic() - logs_read >= LOGS_S:
                        fresh_logs, logs_read = log_tail(run_id), time.monotonic()
                    yield gr.skip(), gr.skip(), headline(update, lang), gr.skip(), fresh_logs, gr.skip(), gr.skip()
                else:
                    yield skip
        except ApiError as e:
            yield gr.skip(), gr.skip(), error_text(e, lang), None, "", *actions(None)

    outputs = [table, pick, status, plot, logs, cancel, retry]
    followed = following.change(follow, following, outputs, show_progress="hidden", concurrency_limit=None,
                                trigger_mode="multiple")
    # a new pick (or language) first stops the follower of the last one, then starts its own
    pick.change(lambda run_id, lang: (run_id, lang) if run_id else None, [pick, ctx.lang], following,
                cancels=[followed], show_progress="hidden")
    ctx.lang.change(lambda run_id, lang: (run_id, lang) if run_id else None, [pick, ctx.lang], following,
                    cancels=[followed], show_progress="hidden")
    pick.input(lambda: "", None, notice, show_progress="hidden")  # another run picked by hand: its notice goes
    refresh.click(listing, ctx.lang, [table, pick], show_progress="hidden")
    if isinstance(tab, gr.Tab):
        tab.select(listing, ctx.lang, [table, pick], show_progress="hidden")
    ctx.on_load.append((listing, [ctx.lang], [table, pick]))

    def on_select(evt: gr.SelectData):
        return gr.update(value=evt.row_value[0]) if evt.row_value else gr.update()

    table.select(on_select, None, pick)

    def do_cancel(run_id: str | None, lang: str) -> str:
        if not run_id:
            return ""
        try:
            return t("cancel_sent_run", lang, run=cards.run_label(ctx.api.cancel(run_id)))
        except ApiError as e:
            return error_text(e, lang)

    def do_retry(run_id: str | None, lang: str):
        if not run_id:
            return gr.update(), ""
        try:
            new = ctx.api.retry(run_id)
            return gr.update(value=new["id"]), t("retried_run", lang, run=cards.run_label(new))
        except ApiError as e:
            return gr.update(), error_text(e, lang)

    cancel.click(do_cancel, [pick, ctx.lang], notice)
    retry.click(do_retry, [pick, ctx.lang], [pick, notice])
