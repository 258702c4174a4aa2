"""Trainer callbacks with run tokens, and the run's WebSocket: snapshot first, then live events;
with Redis, events reach subscribers of another API process."""

from __future__ import annotations

import jwt
import pytest
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from api import crud
from api.security import mint_run_token

SPEC = {"model": "yolo11n", "dataset": "shapes-detect", "epochs": 3, "task": "detect", "framework": "ultralytics"}


@pytest.fixture
def run(db):
    return crud.create_run(db, spec=SPEC)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def cb(client, run_id: str, kind: str, token: str, body: dict | None = None):
    return client.post(f"/api/internal/runs/{run_id}/{kind}", json=body or {}, headers=bearer(token))


def test_heartbeat_marks_running_and_renews_token(client, db, run, settings):
    token = mint_run_token(run.id, settings)
    r = cb(client, run.id, "heartbeat", token)
    assert r.status_code == 200, r.text
    assert r.json()["cancel"] is False and r.json()["token"] != token
    db.refresh(run)
    assert run.state == "running" and run.started and run.last_heartbeat
    assert cb(client, run.id, "heartbeat", r.json()["token"]).status_code == 200  # the renewed one works


def test_metrics_are_idempotent(client, db, run, settings, auth):
    token = mint_run_token(run.id, settings)
    for _ in range(3):  # a retried post
        r = cb(client, run.id, "metrics", token, {"epoch": 1, "epochs": 3, "metrics": {"loss": 0.5, "map": 0.1}})
        assert r.status_code == 200 and r.json()["stored"] == 2
    cb(client, run.id, "metrics", token, {"epoch": 2, "epochs": 3, "metrics": {"loss": 0.4, "map": 0.2}})
    points = client.get(f"/api/runs/{run.id}/metrics", headers=auth).json()
    pairs = [(p["epoch"], p["name"]) for p in points["points"]] if isinstance(points, dict) else \
        [(p["epoch"], p["name"]) for p in points]
    assert sorted(pairs) == [(1, "loss"), (1, "map"), (2, "loss"), (2, "map")]
    db.refresh(run)
    assert run.epochs_done == 2


def test_done_finishes_once_and_refuses_later_callbacks(client, db, run, settings):
    token = mint_run_token(run.id, settings)
    best = f"{settings.storage_url}/runs/{run.id}/checkpoints/best.pt"  # done publishes only the run's own files
    assert cb(client, run.id, "metrics", token, {"epoch": 3, "metrics": {"map": 0.5}}).status_code == 200
    body = {"state": "completed", "metrics": {"map": 0.5}, "checkpoint_uri": best, "epochs_done": 3}
    assert cb(client, run.id, "done", token, body).status_code == 200
    again = cb(client, run.id, "done", token, {"state": "failed", "error": "late"})
    assert again.status_code == 200 and again.json()["state"] == "completed"
    db.refresh(run)
    assert run.state == "completed" and run.final_metrics == {"map": 0.5} and run.checkpoint_uri == best
    assert cb(client, run.id, "metrics", token, {"epoch": 4, "metrics": {"map": 1}}).status_code == 409


def test_cancel_reaches_the_trainer_through_heartbeat(client, db, run, settings):
    crud.update_run(db, run=run, cancel_requested=True)
    assert cb(client, run.id, "heartbeat", mint_run_token(run.id, settings)).json()["cancel"] is True


def test_run_tokens_are_checked(client, db, run, settings):
    other = crud.create_run(db, spec=SPEC)
    assert cb(client, run.id, "heartbeat", mint_run_token(other.id, settings)).status_code == 403
    none_alg = jwt.encode({"sub": run.id, "scope": "run"}, key=None, algorithm="none")
    assert cb(client, run.id, "heartbeat", none_alg).status_code == 401
    wrong_key = jwt.encode({"sub": run.id, "scope": "run", "exp": 9_999_999_999}, "not-the-signing-key-of-this-vtp-api-x", algorithm="HS256")
    assert cb(client, run.id, "heartbeat", wrong_key).status_code == 401
    assert client.post(f"/api/internal/runs/{run.id}/heartbeat").status_code == 401
    expired = mint_run_token(run.id, settings, ttl_s=-10)
    assert cb(client, run.id, "metrics", expired, {"epoch": 1, "metrics": {"a": 1}}).status_code == 401


def test_websocket_snapshot_then_live_then_close(client, run, settings, token):
    rt = mint_run_token(run.id, settings)
    cb(client, run.id, "metrics", rt, {"epoch": 1, "epochs": 3, "metrics": {"loss": 0.9}})  # before subscribing
    with client.websocket_connect(f"/api/runs/{run.id}/ws?token={token}") as ws:
        first = ws.receive_json()
        assert first["type"] == "state" and first["run"]["state"] == "running"
        assert ws.receive_json() == {"type": "metrics", "epoch": 1, "epochs": 3, "metrics": {"loss": 0.9}}
        cb(client, run.id, "metrics", rt, {"epoch": 2, "epochs": 3, "metrics": {"loss": 0.5}})
        assert ws.receive_json()["epoch"] == 2
        cb(client, run.id, "done", rt, {"state": "completed", "metrics": {"loss": 0.5}})
        final = ws.receive_json()
        assert final["type"] == "state" and final["run"]["state"] == "completed"
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_json()
        assert closed.value.code == 1000


def test_websocket_needs_api_token(client, run):
    with pytest.raises(WebSocketDisconnect) as refused, client.websocket_connect(f"/api/runs/{run.id}/ws") as ws:
        ws.receive_json()
    assert refused.value.code == 1008
    with pytest.raises(WebSocketDisconnect), client.websocket_connect(f"/api/runs/{run.id}/ws?token=vtp_wrong") as ws:
        ws.receive_json()


def test_websocket_unknown_run(client, token):
    with client.websocket_connect(f"/api/runs/nope/ws?token={token}") as ws:
        assert ws.receive_json()["type"] == "error"


@pytest.mark.integration
def test_redis_fans_out_between_api_processes(settings, monkeypatch, token, run):
    """Two apps (as two API processes) on one database: a callback on one reaches a subscriber of
    the other through Redis pub/sub."""
    import redis

    from api.main import create_app
    from core.settings import Settings

    try:
        redis.Redis.from_url("redis://127.0.0.1:6379/0", socket_connect_timeout=2).ping()
    except redis.RedisError as e:
        from tests.integration.conftest import unavailable

        unavailable(f"Redis is not reachable at 127.0.0.1:6379: {e}")
    monkeypatch.setenv("VTP_REDIS_URL", "redis://127.0.0.1:6379/0")
    a, b = create_app(Settings()), create_app(Settings())
    with TestClient(a) as ca, TestClient(b) as cb_client:
        rt = mint_run_token(run.id, settings)
        with ca.websocket_connect(f"/api/runs/{run.id}/ws?token={token}") as ws:
            assert ws.receive_json()["type"] == "state"
            r = cb(cb_client, run.id, "metrics", rt, {"epoch": 1, "epochs": 3, "metrics": {"loss": 0.7}})
            assert r.status_code == 200
            events = [ws.receive_json(), ws.receive_json()]  # the run turns running, then the point
            assert events[0]["type"] == "state" and events[0]["run"]["state"] == "running"
            assert events[1]["type"] == "metrics" and events[1]["metrics"] == {"loss": 0.7}


def test_websocket_catches_points_posted_to_another_process_without_redis(settings, token, run):
    """Two API processes, no Redis: the subscriber's periodic database poll still delivers the
    point posted to the other process, and nothing twice."""
    from api.main import create_app

    a, b = create_app(settings), create_app(settings)
    with TestClient(a) as ca, TestClient(b) as cb_client:
        rt = mint_run_token(run.id, settings)
        cb(cb_client, run.id, "metrics", rt, {"epoch": 1, "epochs": 3, "metrics": {"loss": 0.9}})
        with ca.websocket_connect(f"/api/runs/{run.id}/ws?token={token}") as ws:
            assert ws.receive_json()["type"] == "state"
            assert ws.receive_json()["epoch"] == 1
            cb(cb_client, run.id, "metrics", rt, {"epoch": 2, "epochs": 3, "metrics": {"loss": 0.5}})
            cb(cb_client, run.id, "done", rt, {"state": "completed"})
            rest = [ws.receive_json(), ws.receive_json()]
            assert rest[0] == {"type": "metrics", "epoch": 2, "epochs": 3, "metrics": {"loss": 0.5}}
            assert rest[1]["type"] == "state" and rest[1]["run"]["state"] == "completed"


def test_a_closed_websocket_ends_its_follower(client, run, token):
    """A browser tab closed while its run goes on: the server stops following for it (issue 15: it
    re-read the database every 2 s until the run ended, and kept the subscription)."""
    import time

    bus = client.app.state.events
    with client.websocket_connect(f"/api/runs/{run.id}/ws?token={token}") as ws:
        assert ws.receive_json()["type"] == "state"
        assert bus._subs.get(run.id), "subscribed while the socket is open"
    deadline = time.monotonic() + 10
    while bus._subs.get(run.id) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not bus._subs.get(run.id), "the subscription ends with the socket"
