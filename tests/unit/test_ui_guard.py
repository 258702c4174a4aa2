"""The web app's own port (issue 13, finding 8): Host and Origin checks in front of every Gradio
route, and no start off loopback without a login. Served by real Gradio on loopback; the attacks
are plain HTTP requests shaped as a DNS-rebinding page or a cross-site form would send them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import gradio as gr
import httpx
import pytest

from tests.integration.conftest import free_port
from ui.guard import (
    HostOriginGuard,
    UiRefused,
    allowed_hosts,
    is_loopback,
    require_login_off_loopback,
)


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """A small Blocks behind ui.app.launch (the same launch `vtp ui` uses), with one event whose
    effect is a file: the proof that an anonymous cross-site call ran."""
    from ui.app import launch

    proof = tmp_path_factory.mktemp("proof") / "ran"

    def act(text: str) -> str:
        proof.write_text(text)
        return "done"

    with gr.Blocks() as demo:
        box = gr.Textbox()
        out = gr.Textbox()
        gr.Button("go").click(act, box, out, api_name="act")
    port = free_port()
    launch(demo, "127.0.0.1", port, prevent_thread_lock=True)
    yield f"http://127.0.0.1:{port}", proof
    demo.close()


def test_a_rebound_host_name_gets_nothing(served):
    url, _ = served
    for host in ("attacker.example", "attacker.example:7860", "127.0.0.1.attacker.example", "", "evil:@127.0.0.1"):
        r = httpx.get(f"{url}/", headers={"Host": host}, timeout=10)
        assert r.status_code == 400, (host, r.status_code)
        assert "not a name of the vtp web app" in r.text
        r = httpx.get(f"{url}/gradio_api/info", headers={"Host": host}, timeout=10)
        assert r.status_code == 400, (host, r.status_code)
    for host in (url.removeprefix("http://"), "localhost:1234", "LOCALHOST", "[::1]:80"):
        assert httpx.get(f"{url}/", headers={"Host": host}, timeout=10).status_code == 200, host


def test_a_cross_site_event_call_is_refused_and_nothing_runs(served):
    url, proof = served
    body = {"data": ["pwned"], "fn_index": 0, "session_hash": "abc123", "event_data": None, "trigger_id": None}
    for origin in ("http://attacker.example", "null", "http://127.0.0.1:1", "https://127.0.0.1"):
        # a form post or fetch() from another page: text/plain needs no preflight, so only Origin tells
        r = httpx.post(f"{url}/gradio_api/queue/join", content=json.dumps(body),
                       headers={"Origin": origin, "Content-Type": "text/plain"}, timeout=10)
        assert r.status_code == 403, (origin, r.status_code)
        assert "cross-site request refused" in r.text
        r = httpx.post(f"{url}/gradio_api/upload", files={"files": ("a.txt", b"x")}, headers={"Origin": origin},
                       timeout=10)
        assert r.status_code == 403, (origin, r.status_code)
    time.sleep(1)
    assert not proof.exists()


def test_the_app_itself_still_works_from_its_own_origin(served):
    from gradio_client import Client

    url, proof = served
    r = httpx.post(f"{url}/gradio_api/upload", files={"files": ("a.txt", b"x")}, headers={"Origin": url}, timeout=10)
    assert r.status_code == 200, r.text
    assert Client(url, verbose=False).predict("hello", api_name="/act") == "done"
    assert proof.read_text() == "hello"


def test_off_loopback_without_a_login_is_refused():
    for host in ("0.0.0.0", "::", "192.168.1.20", "vtp.example.com"):
        with pytest.raises(UiRefused, match="VTP_UI_USERNAME and VTP_UI_PASSWORD"):
            require_login_off_loopback(host, None)
        require_login_off_loopback(host, ("u", "p"))
    for host in ("127.0.0.1", "127.1.2.3", "localhost", "::1", "[::1]"):
        assert is_loopback(host)
        require_login_off_loopback(host, None)


def test_vtp_ui_on_all_interfaces_without_a_login_does_not_start(tmp_path):
    port = free_port()
    env = {**os.environ, "VTP_HOME": str(tmp_path), "VTP_API_TOKEN": "x", "VTP_UI_PORT": str(port)}
    env.pop("VTP_UI_USERNAME", None)
    env.pop("VTP_UI_PASSWORD", None)
    out = subprocess.run([sys.executable, "-m", "cli.main", "ui", "--host", "0.0.0.0"], env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 1
    assert "VTP_UI_USERNAME and VTP_UI_PASSWORD" in out.stderr and "Traceback" not in out.stderr
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"http://127.0.0.1:{port}/", timeout=2)


def test_allowed_hosts():
    assert allowed_hosts("0.0.0.0") is None  # with a login: any name users type
    assert allowed_hosts("0.0.0.0", ["vtp.example.com"]) == frozenset({"vtp.example.com"})
    assert {"localhost", "127.0.0.1", "::1", "proxy.lan"} <= allowed_hosts("127.0.0.1", [" Proxy.lan "])
    assert HostOriginGuard._same_origin("http://127.0.0.1:7860", "127.0.0.1:7860", {"scheme": "http"})
    assert not HostOriginGuard._same_origin("http://127.0.0.1:7861", "127.0.0.1:7860", {"scheme": "http"})
    assert HostOriginGuard._same_origin("https://vtp.example.com", "vtp.example.com", {"scheme": "https"})
