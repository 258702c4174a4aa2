"""The whole backend path: POST /api/runs → the Prefect deployment and a worker train a tiny model
→ heartbeats and metrics come back through the callbacks → the run ends completed in the database
with its metrics and checkpoint, and a WebSocket subscriber saw every epoch."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from websockets.sync.client import connect

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_api_run_end_to_end_with_live_events(stack_env):
    api = stack_env["API_URL"]
    token = (Path(stack_env["VTP_HOME"]) / "api_token").read_text().strip()
    auth = {"Authorization": f"Bearer {token}"}
    spec = {"model": "yolo11n", "dataset": "shapes-detect", "epochs": 3, "image_size": 64, "batch_size": 8,
            "pretrained": False, "workers": 0}
    created = httpx.post(f"{api}/api/runs", json={"spec": spec}, headers=auth, timeout=30)
    assert created.status_code == 201, created.text
    run_id = created.json()["id"]

    events = []
    with connect(f"{api.replace('http', 'ws', 1)}/api/runs/{run_id}/ws?token={token}", open_timeout=10) as ws:
        while True:
            try:
                events.append(json.loads(ws.recv(timeout=180)))
            except Exception:  # noqa: BLE001 - the server closes the socket once the run has ended
                break
    states = [e["run"]["state"] for e in events if e["type"] == "state"]
    assert states[-1] == "completed", events[-3:]
    assert sorted({e["epoch"] for e in events if e["type"] == "metrics"}) == [1, 2, 3]

    run = httpx.get(f"{api}/api/runs/{run_id}", headers=auth, timeout=30).json()
    assert run["state"] == "completed" and run["epochs_done"] == 3
    assert run["checkpoint_uri"].endswith(f"/runs/{run_id}/checkpoints/best.pt")
    assert "metrics/mAP50-95(B)" in run["final_metrics"]
    points = httpx.get(f"{api}/api/runs/{run_id}/metrics", headers=auth, timeout=30).json()
    points = points["points"] if isinstance(points, dict) else points
    assert {p["epoch"] for p in points} == {1, 2, 3}
    assert len(points) == len({(p["epoch"], p["name"]) for p in points}), "no point is stored twice"
    files = httpx.get(f"{api}/api/runs/{run_id}/artifacts", headers=auth, timeout=30).json()
    names = [f["path"] if isinstance(f, dict) else f for f in (files["files"] if isinstance(files, dict) else files)]
    assert "checkpoints/best.pt" in names
    best = httpx.get(f"{api}/api/runs/{run_id}/artifacts/checkpoints/best.pt", headers=auth, timeout=60)
    assert best.status_code == 200 and len(best.content) > 100_000
