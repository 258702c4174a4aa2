"""Chat: a request in Korean or English → the spec card → Start → live progress → the result card."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import gradio as gr

from ui import cards
from ui.client import ACTIVE, ApiError
from ui.context import Ctx, error_text
from ui.i18n import t

log = logging.getLogger(__name__)
FOLLOW_HEARTBEAT_S = 10.0  # the longest the live progress goes without a yield
PLOTS = ("results.png", "confusion_matrix_normalized.png", "confusion_matrix.png", "PR_curve.png", "curves.png")


# A turn's content is text, or a function of the page's language that makes it (cards, components):
# the conversation is kept as such and rendered for each language, so switching to Korean turns
# every card of the conversation so far into Korean too.
Content = Any  # str | Callable[[str], str | gr.Component]


def _say(history: list[dict[str, Any]], content: Content) -> list[dict[str, Any]]:
    return [*history, {"role": "assistant", "content": content}]


def render(history: list[dict[str, Any]], lang: str) -> list[dict[str, Any]]:
    """The conversation as the Chatbot shows it in ``lang``."""
    return [{"role": m["role"], "content": m["content"](lang) if callable(m["content"]) else m["content"]}
            for m in history]


def reply_turns(reply: dict[str, Any]) -> list[Content]:
    """What the assistant says for one API reply: its text, then the spec card when there is one.
    The reply's text is in the language the person wrote in (the API's choice); the card follows the page."""
    turns: list[Content] = [reply["reply"]] if reply.get("reply") else []
    if reply.get("spec") and not reply.get("run") and reply.get("intent") != "compare":  # a comparison is the answer
        turns.append(lambda lang, r=reply: cards.spec_card(r, lang))
    return turns


def result_turns(ctx: Ctx, run: dict[str, Any]) -> list[Content]:
    """The result card, the checkpoint to download, the plots and a few validation predictions."""
    if run["state"] != "completed":
        return [lambda lang, r=run: cards.failed_card(r, lang)]
    try:
        files = [f["path"] for f in ctx.api.artifacts(run["id"])]
    except ApiError as e:
        return [lambda lang, r=run: cards.result_card(r, lang), lambda lang, e=e: error_text(e, lang)]
    summary, points = run_summary(ctx, run["id"], files), _points(ctx, run["id"])
    turns: list[Content] = [lambda lang, r=run: cards.result_card(r, lang, summary=summary, points=points)]
    if "checkpoints/best.pt" in files:
        best = str(ctx.run_file(run["id"], "checkpoints/best.pt"))
        turns.append(lambda lang, p=best: gr.File(value=p, label=t("checkpoint", lang)))
    names = {f.rsplit("/", 1)[-1]: f for f in files}
    plots = [names[p] for p in PLOTS if p in names][:2]
    preds = sorted(f for f in files if ("val_batch" in f and "pred" in f) or f.endswith("val_pred_grid.jpg"))[:2]
    for path in plots + preds:
        local, name = str(ctx.run_file(run["id"], path)), path.rsplit("/", 1)[-1]
        turns.append(lambda lang, p=local, n=name: gr.Image(value=p, label=n))
    return turns


def run_summary(ctx: Ctx, run_id: str, files: list[str] | None = None) -> dict[str, Any] | None:
    """The run's summary.json (notes, pretrained_used, num_classes), or None when it cannot be read
    (or ``files``, the run's file list when known, lacks it)."""
    if files is not None and "summary.json" not in files:
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


def follow(ctx: Ctx, history: list[dict[str, Any]], run: dict[str, Any]) -> Iterator[list[dict[str, Any]]]:
    """Progress as a chat turn updated in place until the run ends, then the result turns."""
    history = _say(history, lambda lang: t("waiting", lang))  # the reply before this one named the run started
    # over the API's WebSocket (ui.client.ApiClient.follow): an update per event, a quiet one every
    # FOLLOW_HEARTBEAT_S so that a closed page ends this generator at its next yield
    try:
        for update in ctx.api.follow(run["id"], heartbeat_s=FOLLOW_HEARTBEAT_S):
            if update.changed:
                run = update.run
                history[-1] = {"role": "assistant",
                               "content": lambda lang, r=update.run, p=update.points: cards.progress_line(r, p, lang)}
            yield history
    except ApiError as e:
        yield _say(history, lambda lang, e=e: error_text(e, lang))
        return
    if run["state"] in ACTIVE:  # followed as long as a follower may: the Runs tab shows the rest
        return
    try:
        shown = result_turns(ctx, run)
    except Exception as e:  # noqa: BLE001 - the run's outcome is known; a card that cannot be made must not hide it
        log.exception("the result card of run %s could not be made", run["id"])
        shown = [lambda lang, r=run: cards.progress_line(r, [], lang),
                 lambda lang, e=e: error_text(e, lang)]
    for turn in shown:
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
            yield _say(history, lambda lang: t("no_start", lang)), sid, gr.update(), gr.update(), gr.update(), ""
            return
        try:
            reply = ctx.api.chat(message or ("yes, go" if lang == "en" else "응, 시작해"), session_id=sid,
                                 confirm=confirm)
        except ApiError as e:
            yield _say(history, lambda lang, e=e: error_text(e, lang)), sid, gr.update(), gr.update(), gr.update(), ""
            return
        for turn in reply_turns(reply):
            history = _say(history, turn)
        asking = bool(reply.get("question") or reply.get("missing")) and not reply.get("run")
        offer = gr.update(choices=reply.get("datasets") or [], value=None,
                          visible=asking and bool(reply.get("datasets")) and "dataset" in (reply.get("missing") or []))
        ready = bool(reply.get("ready")) and not reply.get("run")
        has_spec = bool(reply.get("spec"))
        yield (history, reply["session_id"], offer, gr.update(interactive=ready), gr.update(interactive=has_spec), "")
        if reply.get("run"):
            for shown in follow(ctx, history, reply["run"]):
                # the message box is left as it is: a person may be typing the next request meanwhile
                yield shown, reply["session_id"], gr.update(), gr.update(interactive=False), gr.update(), gr.update()

    def shown_and_kept(fn):
        """Each yield of ``fn``: the conversation rendered in the page's language (its last argument)
        to the Chatbot, and as it is to the conversation state."""
        def wrapped(*args):
            for history, *rest in fn(*args):
                yield (render(history, args[-1]), history, *rest)
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
    ctx.on_lang.append((render, [turns, ctx.lang], [chatbot]))  # the whole conversation follows a switch
    new.click(lambda: ([], [], None, gr.update(visible=False, choices=[]), gr.update(interactive=False),
                       gr.update(interactive=False), ""), None, outputs)
