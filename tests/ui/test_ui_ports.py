"""Issue 13, findings 5, 7 and 8 against the real `vtp ui` of the session's stack: the web app
answers only to its own names and origin, keeps uploads in a private folder under VTP_HOME
(not the world-readable /tmp/gradio) and caps their size."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import httpx


def test_the_web_app_refuses_rebound_hosts_and_foreign_origins(ui_url):
    assert httpx.get(f"{ui_url}/", timeout=30).status_code == 200
    r = httpx.get(f"{ui_url}/gradio_api/info", headers={"Host": "rebind.attacker.example"}, timeout=30)
    assert r.status_code == 400
    body = {"data": [], "fn_index": 0, "session_hash": "x1", "event_data": None, "trigger_id": None}
    r = httpx.post(f"{ui_url}/gradio_api/queue/join", content=json.dumps(body), timeout=30,
                   headers={"Origin": "http://attacker.example", "Content-Type": "text/plain"})
    assert r.status_code == 403 and "cross-site" in r.text


def test_uploads_stay_in_a_private_folder_under_vtp_home(ui_url, stack):
    tmp = Path(stack["VTP_HOME"]) / "ui-tmp"
    assert tmp.is_dir()
    assert stat.S_IMODE(tmp.stat().st_mode) == 0o700
    downloads = Path(stack["VTP_HOME"]) / "ui-cache"  # checkpoints the web app fetched for download
    assert stat.S_IMODE(downloads.stat().st_mode) == 0o700
    r = httpx.post(f"{ui_url}/gradio_api/upload", files={"files": ("probe.txt", b"vtp upload probe")},
                   headers={"Origin": ui_url}, timeout=30)
    assert r.status_code == 200, r.text
    stored = Path(r.json()[0])
    assert stored.resolve().is_relative_to(tmp.resolve()), stored
    assert stored.read_bytes() == b"vtp upload probe"


def test_uploads_over_the_cap_are_refused(ui_url):
    """The UI under test runs with VTP_MAX_UPLOAD_BYTES=64 MiB (tests/ui/conftest.py)."""
    r = httpx.post(f"{ui_url}/gradio_api/upload", files={"files": ("big.bin", b"\0" * (64 * 1024**2 + 1024))},
                   headers={"Origin": ui_url}, timeout=120)
    assert r.status_code in (400, 413), (r.status_code, r.text[:200])
