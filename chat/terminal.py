"""`vtp chat`: the chat in a terminal, through the API (so runs are recorded like the web page's).

Type requests in Korean or English; answer questions; say "yes, go" / "응, 시작해" to start. A run
that starts is followed live (epoch lines from its WebSocket) until it ends or Ctrl-C.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx

from core.settings import Settings, saved_api_token


def follow_run(settings: Settings, token: str, run_id: str, echo: Callable[[str], None]) -> None:
    from websockets.sync.client import connect

    url = f"{settings.api_url.replace('http', 'ws', 1)}/api/runs/{run_id}/ws?token={token}"
    try:
        with connect(url, open_timeout=10) as ws:
            for raw in ws:
                event = json.loads(raw)
                if event["type"] == "metrics":
                    shown = ", ".join(f"{k}={v:.4g}" for k, v in list(event["metrics"].items())[:4])
                    echo(f"  epoch {event['epoch']}/{event.get('epochs') or '?'}  {shown}")
                elif event["type"] == "state":
                    run = event["run"]
                    echo(f"  [{run['state']}]" + (f" checkpoint: {run['checkpoint_uri']}" if run.get("checkpoint_uri")
                                                   else "") + (f" {run['error']}" if run.get("error") else ""))
    except KeyboardInterrupt:
        echo("  (stopped following; the run goes on: `vtp runs`)")


def chat_loop(settings: Settings, read: Callable[[str], str] = input, echo: Callable[[str], None] = print) -> int:
    token = saved_api_token(settings)
    if token is None:
        echo(f"vtp: no API token: start the stack with `vtp up` (it saves one to {settings.home}/api_token) "
             "or set VTP_API_TOKEN")
        return 1
    session_id: str | None = None
    echo("vtp chat — e.g. 'shapes-detect로 YOLO11n 2에폭 학습해줘' or 'train resnet18 on shapes-classify'. "
         "Ctrl-D to leave.")
    with httpx.Client(base_url=settings.api_url, headers={"Authorization": f"Bearer {token}"}, timeout=60) as client:
        while True:
            try:
                message = read("> ")
            except (EOFError, KeyboardInterrupt):
                echo("")
                return 0
            if not message.strip():
                continue
            try:
                r = client.post("/api/chat", json={"session_id": session_id, "message": message})
            except httpx.HTTPError as e:
                echo(f"vtp: the API at {settings.api_url} is not answering ({e}): is `vtp up` running?")
                return 1
            body: dict[str, Any] = r.json()
            if r.status_code != 200:
                echo(f"vtp: {body.get('detail') or body}")
                continue
            session_id = body["session_id"]
            echo(body["reply"])
            if body["run"]:
                follow_run(settings, token, body["run"]["id"], echo)
