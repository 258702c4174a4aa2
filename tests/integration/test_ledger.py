"""The ledger against the real stack: a flow run started directly on the stack's Prefect server (no
API involved, no vtp token, as a schedule, the Prefect UI or `vtp train` start them) appears in
``GET /api/runs`` with a readable name and ends ``completed`` with its metrics and checkpoint."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from core.settings import Settings
from tests.api.fixtures import database_url, pg_database, pg_databases  # noqa: F401 - fixtures
from tests.integration.conftest import wait_for

pytestmark = pytest.mark.integration

SPEC = {"model": "resnet18", "dataset": "shapes-classify", "epochs": 1, "image_size": 32, "batch_size": 8,
        "workers": 0, "pretrained": False}


@pytest.fixture
def api(stack_env, database_url, monkeypatch):  # noqa: F811 - the fixture imported above
    """An app on a fresh test database, talking to the stack's Prefect server and storage; its
    lifespan runs the ledger's reconciler, each second here."""
    from api import ledger
    from api.main import create_app
    from api.tokens import create_token

    monkeypatch.setenv("VTP_DATABASE_URL", database_url)
    monkeypatch.setattr(ledger, "RECONCILE_EVERY_S", 1.0)
    settings = Settings()
    app = create_app(settings)
    with TestClient(app) as client:
        with app.state.sessions() as session:
            token = create_token(session, name="ledger-tests").token
        client.headers["Authorization"] = f"Bearer {token}"
        yield client, settings


def listed(client, flow_run_id: str) -> dict | None:
    items = client.get("/api/runs", params={"limit": 500}).json()["items"]
    return next((r for r in items if r["prefect_flow_run_id"] == flow_run_id), None)


def test_a_flow_run_started_in_prefect_is_in_the_ledger(api):
    from core.prefect_api import prefect_client

    client, settings = api
    with prefect_client(settings) as pc:
        deployment = pc.read_deployment_by_name("train/train-timm")
        bad = pc.create_flow_run_from_deployment(deployment.id, parameters={"spec": {**SPEC, "model": "resnet99x"}})
        flow_run = pc.create_flow_run_from_deployment(deployment.id, parameters={"spec": SPEC})
    flow_run_id = str(flow_run.id)

    run = wait_for(lambda: listed(client, flow_run_id), timeout=60)
    assert run["id"] == flow_run_id and run["origin"] == "prefect"  # the run id is the flow-run id
    assert re.fullmatch(r"resnet18-shapes-classify-\d+", run["name"]), run["name"]
    assert run["spec"]["model"] == "resnet18" and run["spec"]["framework"] == "timm"
    assert listed(client, str(bad.id)) is None  # its spec does not validate: skipped
    assert client.get(f"/api/runs/{run['name']}").json()["id"] == flow_run_id

    ended = wait_for(lambda: (body := client.get(f"/api/runs/{run['name']}").json())["state"]
                     in ("completed", "failed", "crashed", "cancelled") and body, timeout=400, every=2)
    assert ended["state"] == "completed", ended
    assert ended["checkpoint_uri"] and ended["checkpoint_uri"].startswith(f"{settings.storage_url}/runs/{flow_run_id}/")
    assert "metrics/accuracy_top1" in ended["final_metrics"] and ended["epochs_done"] == 1
    assert ended["finished"] and ended["started"] and ended["name"] == run["name"]
    points = client.get(f"/api/runs/{flow_run_id}/metrics").json()["points"]
    assert points and {p["epoch"] for p in points} == {1}  # from the run's results.csv
    listed_again = listed(client, flow_run_id)
    assert listed_again["state"] == "completed" and listed_again["name"] == run["name"]
    assert listed(client, str(bad.id)) is None
    with prefect_client(settings) as pc:  # the flow run carries a ledger name too (this API's or the stack's)
        assert re.fullmatch(r"resnet18-shapes-classify-\d+", pc.read_flow_run(flow_run.id).name)
