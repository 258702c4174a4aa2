"""The Gradio Blocks of vtp: Chat, Runs, Datasets, Models and Compare, in Korean or English."""

from __future__ import annotations

import tempfile
from pathlib import Path

import gradio as gr

from core.settings import Settings
from ui.client import ApiClient
from ui.context import Ctx
from ui.i18n import BROWSER_LANG_JS, pick_lang
from ui.settings import UiSettings
from ui.tabs import chat, compare, datasets, models, runs

CSS = """
#chatbot table { font-size: 0.92em; }
#runs-table th, #runs-table th * { word-break: keep-all; overflow-wrap: normal; white-space: nowrap; }
footer { display: none !important; }
"""


def build_app(api_url: str, token: str, *, prefect_ui: str = "", cache: Path | None = None) -> gr.Blocks:
    cache = cache or Path(tempfile.mkdtemp(prefix="vtp-ui-"))
    cache.mkdir(parents=True, exist_ok=True)
    cache.chmod(0o700)  # downloaded checkpoints and plots: the user's alone, like GRADIO_TEMP_DIR
    ctx = Ctx(api=ApiClient(api_url, token), cache=cache, prefect_ui=prefect_ui.rstrip("/"))
    L = ctx.labels
    # Gradio keeps every upload and file it serves in its cache: drop what is older than an hour
    with gr.Blocks(title="vtp", delete_cache=(3600, 3600)) as demo:
        ctx.lang = gr.State("en")
        browser_lang = gr.Textbox(visible=False)
        with gr.Row():
            L(gr.Markdown(elem_id="title"), "title", "value")
            switch = gr.Radio(choices=[("English", "en"), ("한국어", "ko")], value="en", show_label=False,
                              elem_id="lang-switch", container=False, scale=0, min_width=220)
        with L(gr.Tab(id="chat", elem_id="tab-chat"), "tab_chat"):
            chat.build(ctx)
        with L(gr.Tab(id="runs", elem_id="tab-runs"), "tab_runs"):
            runs.build(ctx)
        with L(gr.Tab(id="datasets", elem_id="tab-datasets"), "tab_datasets"):
            datasets.build(ctx)
        with L(gr.Tab(id="models", elem_id="tab-models"), "tab_models"):
            models.build(ctx)
        with L(gr.Tab(id="compare", elem_id="tab-compare"), "tab_compare"):
            compare.build(ctx)

        def relabel(lang: str):
            lang = pick_lang(lang)
            return [lang, lang, *L.updates(lang)]

        outputs = [ctx.lang, switch, *L.components]
        loaded = demo.load(relabel, browser_lang, outputs, js=BROWSER_LANG_JS)
        switched = switch.input(relabel, switch, outputs)
        for fn, inputs, outs in ctx.on_lang:
            switched = switched.then(fn, inputs, outs)
        # after the relabel, not beside it: both update the dropdowns, and in parallel the
        # relabel's update could land last and leave them without their choices
        for fn, inputs, outs in ctx.on_load:
            loaded = loaded.then(fn, inputs, outs)
    demo.queue(default_concurrency_limit=16)
    return demo


def from_settings(ui: UiSettings | None = None, core: Settings | None = None) -> gr.Blocks:
    core = core or Settings()
    ui = ui or UiSettings()
    return build_app(core.api_url, ui.token(core), prefect_ui=core.prefect_api_url.removesuffix("/api"),
                     cache=core.home / "ui-cache")


def launch(demo: gr.Blocks, host: str, port: int, auth: tuple[str, str] | None = None,
           allowed_hosts: list[str] | None = None, **kw) -> None:
    """Serve the app behind ui.guard's Host/Origin checks; refuses (ui.guard.UiRefused) to listen
    off loopback without a login. Uploads through Gradio's own route are capped at
    VTP_MAX_UPLOAD_BYTES, like the API's."""
    from starlette.middleware import Middleware

    from ui.guard import HostOriginGuard, require_login_off_loopback
    from ui.guard import allowed_hosts as hosts_for

    require_login_off_loopback(host, auth)
    kw.setdefault("max_file_size", Settings().max_upload_bytes)
    app_kwargs = dict(kw.pop("app_kwargs", None) or {})
    app_kwargs["middleware"] = [*app_kwargs.get("middleware", []),
                                Middleware(HostOriginGuard, hosts=hosts_for(host, allowed_hosts or []))]
    demo.launch(server_name=host, server_port=port, auth=auth, css=CSS, show_error=True, quiet=True,
                app_kwargs=app_kwargs, **kw)
