"""The UI in a real browser: `vtp ui` as a subprocess pointed at the session's `vtp up` stack, and
headless Debian chromium driven by Playwright. Screenshots go to test-artifacts/ui/."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.integration.conftest import free_port, unavailable

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "ui"


@pytest.fixture(scope="session")
def api(stack):  # noqa: F811 - the imported fixture
    token = (Path(stack["VTP_HOME"]) / "api_token").read_text().strip()
    with httpx.Client(base_url=stack["API_URL"], headers={"Authorization": f"Bearer {token}"}, timeout=60) as c:
        yield c


@pytest.fixture(scope="session")
def ui_url(stack, tmp_path_factory):  # noqa: F811
    port = free_port()
    env = {**os.environ, "VTP_HOME": stack["VTP_HOME"], "VTP_PREFECT_PORT": stack["VTP_PREFECT_PORT"],
           "VTP_API_PORT": stack["VTP_API_PORT"], "VTP_UI_PORT": str(port), "GRADIO_ANALYTICS_ENABLED": "False",
           "VTP_MAX_UPLOAD_BYTES": str(64 * 1024**2)}  # the web app's upload cap, tested in test_ui_ports.py
    env.pop("VTP_STORAGE_URL", None)
    log = open(tmp_path_factory.mktemp("ui") / "ui.log", "wb")  # noqa: SIM115 - the child writes it
    proc = subprocess.Popen([sys.executable, "-m", "ui.cli"], env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            unavailable(f"`vtp ui` exited with {proc.returncode}; see {log.name}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.3)
    else:
        proc.kill()
        unavailable("`vtp ui` did not answer within 90 s")
    yield url
    proc.terminate()
    proc.wait(15)


@pytest.fixture(scope="session")
def browser(ui_url):
    """Started after the stack: Playwright's sync API runs an event loop in this thread, and Prefect's
    sync client (used by `vtp up`) misbehaves when it finds one running."""
    if not Path(CHROMIUM).exists():
        unavailable(f"no chromium at {CHROMIUM}")
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=30_000)  # a first chat turn may load the parser's models

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield b
        b.close()


@pytest.fixture
def page_for(browser, ui_url):
    """page_for('ko-KR') → a fresh page of the UI in that browser language."""
    contexts = []

    def open_page(locale: str = "en-US"):
        ctx = browser.new_context(locale=locale, viewport={"width": 1400, "height": 1000})
        contexts.append(ctx)
        page = ctx.new_page()
        page.set_default_timeout(30_000)
        page.goto(ui_url)
        page.wait_for_selector("#chat-input textarea")
        return page

    yield open_page
    for ctx in contexts:
        ctx.close()


def upload_file(page, elem_id: str, path: Path) -> None:
    """Drop ``path`` on the gr.File ``#elem_id`` and wait until it is uploaded (its download link is
    listed), as a person waits: Gradio refuses a click meanwhile ("waiting for file(s) to finish
    uploading, please retry") and the panel keeps its earlier message."""
    from playwright.sync_api import expect

    page.locator(f"#{elem_id} input[type=file]").set_input_files(str(path))
    expect(page.locator(f"#{elem_id} a[href$='/{path.name}']").first).to_be_attached(timeout=60_000)


def shot(page, name: str) -> Path:
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
