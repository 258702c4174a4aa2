"""ui.client.ApiClient.follow against the real API served by uvicorn on a real port: the snapshot,
then live points over the WebSocket; a reopened socket after the API restarts; polling only when
the socket cannot be opened; an unknown run refused."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest
import uvicorn

from api import crud
from api.security import mint_run_token
from api.tokens import create_token
from tests.api.fixtures import database_url, pg_database, pg_databases, settings  # noqa: F401 - fixtures
from tests.integration.conftest import free_port
from ui.client import ApiClient, ApiError

SPEC = {"model": "yolo11n", "dataset": "shapes-detect", "epochs": 3, "task": "detect", "framework": "ultralytics"}


@contextmanager
def serve(app, port: int, ws: str = "auto") -> Iterator[str]:
    """The app on 127.0.0.1:port in a thread (``ws="none"``: a server without WebSocket support)."""
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, ws=ws, log_level="warning",
                                           lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(15)


@pytest.fixture
def api(settings):  # noqa: F811 - the imported fixture
    """(app, port, api token, run id, run token) of a fresh app; the app is served by the test."""
    from api.main import create_app

    app = create_app(settings)
    with serve(app, port := free_port()), app.state.sessions() as session:  # lifespan: migrations applied
        token = create_token(session, name="ui-follow").token
        run_id = crud.create_run(session, spec=SPEC).id
    return app, port, token, run_id, mint_run_token(run_id, settings)


def post(base: str, run_id: str, kind: str, run_token: str, body: dict) -> None:
    r = httpx.post(f"{base}/api/internal/runs/{run_id}/{kind}", json=body, timeout=30,
                   headers={"Authorization": f"Bearer {run_token}"})
    assert r.status_code == 200, r.text


def test_snapshot_then_live_points_then_the_end(api):
    app, port, token, run_id, rt = api
    with serve(app, port) as base:
        post(base, run_id, "metrics", rt, {"epoch": 1, "epochs": 3, "metrics": {"loss": 0.9, "map": 0.1}})
        updates = ApiClient(base, token).follow(run_id, heartbeat_s=1.0)
        first = next(updates)
        assert first.via == "socket" and first.changed and not first.ended
        assert first.run["state"] == "running" and first.run["epochs_done"] == 1
        assert first.points == [{"epoch": 1, "name": "loss", "value": 0.9}, {"epoch": 1, "name": "map", "value": 0.1}]
        started = time.monotonic()
        quiet = next(updates)  # nothing happened: a heartbeat, so a consumer that left is noticed
        assert not quiet.changed and quiet.run["epochs_done"] == 1 and time.monotonic() - started < 3
        post(base, run_id, "metrics", rt, {"epoch": 2, "epochs": 3, "metrics": {"loss": 0.5, "map": 0.3}})
        second = next(updates)
        assert second.changed and second.run["epochs_done"] == 2 and len(second.points) == 4
        assert (second.run.get("name") or run_id) in ((first.run.get("name") or run_id),)  # the same run
        post(base, run_id, "done", rt, {"state": "completed", "metrics": {"map": 0.3}, "epochs_done": 2})
        last = [u for u in updates if u.changed][-1]
        assert last.ended and last.run["state"] == "completed" and last.run["final_metrics"] == {"map": 0.3}
        assert next(updates, None) is None  # ended: the follower stops by itself


def test_reopens_the_socket_after_the_api_restarts(api, caplog):
    app, port, token, run_id, rt = api
    caplog.set_level(logging.INFO, logger="ui.client")
    with serve(app, port) as base:
        post(base, run_id, "metrics", rt, {"epoch": 1, "epochs": 3, "metrics": {"loss": 0.9}})
        updates = ApiClient(base, token).follow(run_id, heartbeat_s=60)
        assert next(updates).run["epochs_done"] == 1
    # the API is down now: the follower's socket was cut; it reopens once the API is back
    with serve(app, port) as base:
        post(base, run_id, "metrics", rt, {"epoch": 2, "epochs": 3, "metrics": {"loss": 0.5}})
        again = next(u for u in updates if u.run["epochs_done"] >= 2)  # reopened before or after the post
        assert again.via == "socket"
        assert {p["epoch"] for p in again.points} == {1, 2}
        post(base, run_id, "done", rt, {"state": "failed", "error": "out of memory"})
        assert [u for u in updates][-1].run["state"] == "failed"
    assert "reopening" in caplog.text and "polling" not in caplog.text


def test_polls_only_when_the_socket_cannot_be_opened(api, caplog):
    app, port, token, run_id, rt = api
    caplog.set_level(logging.INFO, logger="ui.client")
    with serve(app, port, ws="none") as base:  # answers the upgrade with a plain HTTP status
        updates = ApiClient(base, token).follow(run_id)
        first = next(updates)
        assert first.via == "poll" and first.run["state"] == "queued"
        assert "polling the REST API" in caplog.text
        post(base, run_id, "metrics", rt, {"epoch": 1, "epochs": 3, "metrics": {"loss": 0.9}})
        post(base, run_id, "done", rt, {"state": "completed", "metrics": {"loss": 0.9}, "epochs_done": 1})
        seen = list(updates)
        assert seen[-1].ended and seen[-1].run["state"] == "completed" and seen[-1].points


def test_is_bounded_by_its_timeout_and_by_its_consumer(api):
    app, port, token, run_id, _ = api
    with serve(app, port) as base:
        client = ApiClient(base, token)
        started = time.monotonic()
        assert len(list(client.follow(run_id, timeout_s=2, heartbeat_s=0.5))) >= 2
        assert time.monotonic() - started < 5
        flag = {"alive": True}
        updates = client.follow(run_id, alive=lambda: flag["alive"])
        assert next(updates).run["state"] == "queued"
        flag["alive"] = False  # the browser session went away
        started = time.monotonic()
        assert next(updates, None) is None and time.monotonic() - started < 3


def test_unknown_run_and_bad_token_are_refused(api):
    app, port, token, run_id, _ = api
    with serve(app, port) as base:
        with pytest.raises(ApiError) as unknown:
            next(ApiClient(base, token).follow("no-such-run"))
        assert unknown.value.status == 404
        with pytest.raises(ApiError) as refused:
            next(ApiClient(base, "vtp_wrong").follow(run_id))
        assert refused.value.status == 401


def test_chat_progress_follows_the_socket_to_the_outcome(api, tmp_path):
    """The chat's live progress (ui.tabs.chat.follow): a progress turn naming the run, updated in
    place as epochs arrive, then the outcome card once the run ends."""
    from ui.context import Ctx
    from ui.tabs import chat

    app, port, token, run_id, rt = api
    with serve(app, port) as base:
        ctx = Ctx(api=ApiClient(base, token), cache=tmp_path, prefect_ui="")
        run = ctx.api.run(run_id)
        label = f"{run['name']} (`{run_id[:8]}`)" if run.get("name") else f"`{run_id[:8]}`"
        turns = chat.follow(ctx, [{"role": "user", "content": "train"}], run)
        shown = chat.render(next(turns), "en")
        assert len(shown) == 2 and f"Run {label} — queued · epoch 0/3" in shown[-1]["content"]
        post(base, run_id, "metrics", rt, {"epoch": 1, "epochs": 3, "metrics": {"train/loss": 0.9}})
        shown = chat.render(next(h for h in turns if "epoch 1/3" in chat.render(h, "en")[-1]["content"]), "ko")
        assert len(shown) == 2 and f"실행 {label} — 학습 중 · 에폭 1/3 · 손실 0.9" in shown[-1]["content"]
        post(base, run_id, "done", rt, {"state": "failed", "error": "CUDA out of memory"})
        final = chat.render(list(turns)[-1], "en")
        assert final[-1]["content"] == f"Run {label} ended **failed**: CUDA out of memory"
        assert "Run " + label in final[-2]["content"] and "failed" in final[-2]["content"]
