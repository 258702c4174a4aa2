"""Chat: a request in Korean or English → the spec card → Start → live progress → the result card."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import gradio as gr

from ui import cards
from ui.client import ACTIVE, ApiError
from ui.context import Ctx, error_text
from ui.i18n import t

POLL_S = 1.5
PLOTS = ("results.png", "confusion_matrix_normalized.png", "confusion_matrix.png", "PR_curve.png", "curves.png")


def _say(history: list[dict[str, Any]], content: Any) -> list[dict[str, Any]]:
    return [*history, {"role": "assistant", "content": content}]


def reply_turns(reply: dict[str, Any], lang: str) -> list[Any]:
    """What the assistant says for one API reply: its text, then the spec card when there is one."""
    turns: list[Any] = [reply["reply"]] if reply.get("reply") else []
    if reply.get("spec") and not reply.get("run"):
        turns.append(cards.spec_card(reply, lang))
    return turns


def result_turns(ctx: Ctx, run: dict[str, Any], lang: str) -> list[Any]:
    """The result card, the checkpoint to download, the plots and a few validation predictions."""
    if run["state"] != "completed":
        return [cards.failed_card(run, lang)]
    try:
        files = [f["path"] for f in ctx.api.artifacts(run["id"])]
    except ApiError as e:
        return [cards.result_card(run, lang), error_text(e, lang)]
    turns: list[Any] = [cards.result_card(run, lang, summary=run_summary(ctx, run["id"], files),
                                          points=_points(ctx, run["id"]))]
    if "checkpoints/best.pt" in files:
        turns.append(gr.File(value=str(ctx.run_file(run["id"], "checkpoints/best.pt")), label=t("checkpoint", lang)))
    names = {f.rsplit("/", 1)[-1]: f for f in files}
    plots = [names[p] for p in PLOTS if p in names][:2]
    preds = sorted(f for f in files if ("val_batch" in f and "pred" in f) or f.endswith("val_pred_grid.jpg"))[:2]
    for path in plots + preds:
        turns.append(gr.Image(value=str(ctx.run_file(run["id"], path)), label=path.rsplit("/", 1)[-1]))
    return turns


def run_summary(ctx: Ctx, run_id: str, files: list[str]) -> dict[str, Any] | None:
    """The run's summary.json (notes, pretrained_used, num_classes), or None when it cannot be read."""
    if "summary.json" not in files:
        return None
    try:
        data = json.loads(ctx.run_file(run_id, "summary.json").read_text())
    except (ApiError, OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _points(ctx: Ctx, run_id: str) -> list[dict[str, Any]]:
    try:
        return ctx.api.metrics(run_id)
    except ApiError:
        return []


def follow(ctx: Ctx, history: list[dict[str, Any]], run: dict[str, Any], lang: str) -> Iterator[list[dict[str, Any]]]:
    """Progress as a chat turn updated in place until the run ends, then the result turns."""
    history = _say(history, t("waiting", lang))  # the reply before this one already said which run started
    while True:
        try:
            run = ctx.api.run(run["id"])
            points = ctx.api.metrics(run["id"])
            history[-1] = {"role": "assistant", "content": cards.progress_line(run, points, lang)}
        except ApiError as e:
            history[-1] = {"role": "assistant", "content": error_text(e, lang)}
        yield history
        if run["state"] not in ACTIVE:
            break
        time.sleep(POLL_S)
    for turn in result_turns(ctx, run, lang):
        history = _say(history, turn)
    yield history


def build(ctx: Ctx) -> None:
    L = ctx.labels
    session = gr.State(None)
    # The conversation lives here, on the server; the Chatbot only shows it. Sent back from the
    # browser, the result card's file and image turns do not survive Gradio's preprocessing
    # ("FileData() argument after ** must be a mapping"), which broke every message after a result.
    turns = gr.State([])
    chatbot = L(gr.Chatbot(height=520, elem_id="chatbot"), "chat")
    choices = L(gr.Radio(choices=[], visible=False, elem_id="dataset-choices", interactive=True), "choices")
    with gr.Row():
        msg = L(L(gr.Textbox(scale=5, show_label=False, elem_id="chat-input", lines=1, max_lines=4), "message_ph",
                  "placeholder"), "message")
        send = L(gr.Button(variant="primary", scale=1, elem_id="chat-send"), "send", "value")
    with gr.Row():
        start = L(gr.Button(variant="primary", elem_id="chat-start", interactive=False), "start", "value")
        edit = L(gr.Button(elem_id="chat-edit", interactive=False), "edit", "value")
        new = L(gr.Button(elem_id="chat-new"), "new_chat", "value")

    def converse(message: str, history, sid, lang, confirm: bool = False):
        """One exchange; yields (chatbot, session, choices, start, edit, msg) while a run is followed."""
        history = list(history or [])
        message = (message or "").strip()
        if not message and not confirm:
            yield history, sid, gr.update(), gr.update(), gr.update(), ""
            return
        if message:
            history.append({"role": "user", "content": message})
        if confirm and sid is None:
            yield _say(history, t("no_start", lang)), sid, gr.update(), gr.update(), gr.update(), ""
            return
        try:
            reply = ctx.api.chat(message or ("yes, go" if lang == "en" else "응, 시작해"), session_id=sid,
                                 confirm=confirm)
        except ApiError as e:
            yield _say(history, error_text(e, lang)), sid, gr.update(), gr.update(), gr.update(), ""
            return
        for turn in reply_turns(reply, lang):
            history = _say(history, turn)
        asking = bool(reply.get("question") or reply.get("missing")) and not reply.get("run")
        offer = gr.update(choices=reply.get("datasets") or [], value=None,
                          visible=asking and bool(reply.get("datasets")) and "dataset" in (reply.get("missing") or []))
        ready = bool(reply.get("ready")) and not reply.get("run")
        has_spec = bool(reply.get("spec"))
        yield (history, reply["session_id"], offer, gr.update(interactive=ready), gr.update(interactive=has_spec), "")
        if reply.get("run"):
            for shown in follow(ctx, history, reply["run"], lang):
                yield shown, reply["session_id"], gr.update(), gr.update(interactive=False), gr.update(), ""

    def shown_and_kept(fn):
        """Each yield of ``fn`` goes to the Chatbot and to the conversation state alike."""
        def wrapped(*args):
            for history, *rest in fn(*args):
                yield (history, history, *rest)
        return wrapped

    outputs = [chatbot, turns, session, choices, start, edit, msg]
    talk = shown_and_kept(converse)
    send.click(talk, [msg, turns, session, ctx.lang], outputs)
    msg.submit(talk, [msg, turns, session, ctx.lang], outputs)
    choices.input(talk, [choices, turns, session, ctx.lang], outputs)

    @shown_and_kept
    def confirm(history, sid, lang):
        yield from converse("", history, sid, lang, confirm=True)

    start.click(lambda: gr.update(interactive=False), None, start).then(
        confirm, [turns, session, ctx.lang], outputs)
    edit.click(lambda lang: gr.update(value=t("edit_hint", lang)), ctx.lang, msg, js=None).then(
        None, None, None, js="() => { const el = document.querySelector('#chat-input textarea'); "
                              "if (el) { el.focus(); el.setSelectionRange(el.value.length, el.value.length); } }")
    new.click(lambda: ([], [], None, gr.update(visible=False, choices=[]), gr.update(interactive=False),
                       gr.update(interactive=False), ""), None, outputs)
