"""``WS /api/runs/{run_id}/ws``: a run's state changes and metric points as they arrive.

A subscriber first gets what already happened (the run, then every stored epoch's metrics), so a
late subscriber misses nothing; then live events from the bus. Every couple of seconds without an
event the run is re-read, which catches state changes made elsewhere (Prefect, another API process
without Redis). The socket closes (code 1000) once the run has ended. Authenticate with the API
token in ``Authorization: Bearer …`` or, from a browser, as the subprotocols ``["vtp",
"vtp.bearer.<token>"]`` (the token then appears in no URL; the server answers with ``vtp``).
``?token=…`` still works, and the API's logs redact it (api/log_redact.py).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from typing import Any

from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from fastapi.concurrency import run_in_threadpool

from api import crud, prefect_runs
from api.errors import NotFound
from api.run_states import TERMINAL_STATES as TERMINAL
from api.schemas import RunOut
from api.tokens import TokenRejected, authenticate

router = APIRouter(tags=["runs"])
POLL_S = 2.0
PROTOCOL = "vtp"
BEARER_PROTOCOL = "vtp.bearer."  # the subprotocol carrying the API token (never in a URL, never logged)


def _authorized(app: Any, token: str | None) -> bool:
    if not token:
        return False
    with app.state.sessions() as session:
        try:
            authenticate(session, token)
        except TokenRejected:
            return False
    return True


def _run(app: Any, run_id: str, *, after_epoch: int = 0) -> tuple[dict[str, Any], list[dict[str, Any]]] | None:
    """The run (state mirrored from Prefect) and its metric events for epochs after ``after_epoch``."""
    with app.state.sessions() as session:
        try:
            run = crud.get_run(session, run_id=run_id)
        except NotFound:
            return None
        prefect_runs.sync_run_state(session, run, settings=app.state.settings)
        out = RunOut.model_validate(run).model_dump(mode="json")
        epochs: dict[int, dict[str, float]] = defaultdict(dict)
        for point in crud.list_metrics(session, run_id=run_id, after_epoch=after_epoch):
            epochs[point.epoch][point.name] = point.value
        epochs_total = (run.spec or {}).get("epochs")
        return out, [{"type": "metrics", "epoch": e, "epochs": epochs_total, "metrics": m} for e, m in sorted(epochs.items())]


@router.websocket("/api/runs/{run_id}/ws")
async def run_events(websocket: WebSocket, run_id: str) -> None:
    header = websocket.headers.get("authorization", "")
    offered = [p.strip() for p in websocket.headers.get("sec-websocket-protocol", "").split(",") if p.strip()]
    in_protocol = next((p[len(BEARER_PROTOCOL):] for p in offered if p.startswith(BEARER_PROTOCOL)), None)
    token = (in_protocol or websocket.query_params.get("token")
             or (header[7:] if header.lower().startswith("bearer ") else None))
    if not await run_in_threadpool(_authorized, websocket.app, token):
        await websocket.close(code=1008, reason="an API token is needed: Authorization: Bearer <token>, "
                                                "subprotocol vtp.bearer.<token>, or ?token=")
        return
    await websocket.accept(subprotocol=PROTOCOL if PROTOCOL in offered else None)
    closed = asyncio.create_task(_until_closed(websocket))  # a closed tab ends the loop within POLL_S
    try:
        async with websocket.app.state.events.subscribe(run_id) as subscription:
            snapshot = await run_in_threadpool(_run, websocket.app, run_id)
            if snapshot is None:
                await websocket.send_json({"type": "error", "message": f"no run with id {run_id}"})
                await websocket.close(code=4404)
                return
            run, history = snapshot
            await websocket.send_json({"type": "state", "run": run})
            for event in history:
                await websocket.send_json(event)
            state = run["state"]
            last_epoch = max((e["epoch"] for e in history), default=0)
            while state not in TERMINAL:
                if closed.done():  # the client went away: stop reading for it
                    return
                event = await subscription.get(timeout=POLL_S)
                if event is not None:
                    pending = [event]
                else:  # quiet: catch what reached the database another way (Prefect, other processes)
                    fresh = await run_in_threadpool(_run, websocket.app, run_id, after_epoch=last_epoch)
                    if fresh is None:
                        continue
                    pending = fresh[1] + ([{"type": "state", "run": fresh[0]}] if fresh[0]["state"] != state else [])
                for item in pending:
                    await websocket.send_json(item)
                    if item["type"] == "metrics":
                        last_epoch = max(last_epoch, item["epoch"])
                    elif item["type"] == "state":
                        state = item["run"]["state"]
            await websocket.close(code=1000)
    except WebSocketDisconnect:
        return
    finally:
        closed.cancel()


async def _until_closed(websocket: WebSocket) -> None:
    """Returns when the client disconnects; what it sends is ignored (the stream is one-way)."""
    with contextlib.suppress(WebSocketDisconnect, RuntimeError):
        while (await websocket.receive())["type"] != "websocket.disconnect":
            pass

