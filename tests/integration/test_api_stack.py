"""The API against the real `vtp up` stack, once on file:// storage and once on S3 (`any_stack`):
the stack serves it with the token it saved and the sample datasets it stored, and a run created
through the API becomes a flow run of its deployment with {spec, run_id, api_url, run_token}.
Training itself is not waited for (test_api_e2e.py and tests/integration/test_flow.py cover it)."""

from __future__ import annotations

from uuid import UUID

import httpx
import pytest
from fastapi.testclient import TestClient

from api.security import verify_run_ticket
from core.settings import Settings
from tests.api.fixtures import database_url, pg_database, pg_databases  # noqa: F401 - fixtures
from tests.integration.conftest import wait_for
from tests.stack_fixtures import stored

pytestmark = pytest.mark.integration


def read_flow_run(flow_run_id: str, settings: Settings):
    from core.prefect_api import prefect_client

    with prefect_client(settings) as client:
        return client.read_flow_run(UUID(flow_run_id))


@pytest.fixture
def api(any_stack, database_url, monkeypatch):  # noqa: F811 - the fixture imported above
    """An app on the test database, talking to the stack's Prefect server and storage."""
    from api.main import create_app
    from api.tokens import create_token

    monkeypatch.setenv("VTP_DATABASE_URL", database_url)
    settings = Settings()
    app = create_app(settings)
    with TestClient(app) as client:
        with app.state.sessions() as session:
            token = create_token(session, name="stack-tests").token
        client.headers["Authorization"] = f"Bearer {token}"
        yield client, settings


@pytest.fixture
def db_session(api):
    client, _ = api
    with client.app.state.sessions() as session:
        yield session


def test_stack_serves_the_api_with_the_token_it_saved(any_stack):
    """The API answers with the token `vtp up` saved, on the stack's storage, where `vtp up` stored the samples."""
    base = any_stack["API_URL"]
    token = (any_stack["home"] / "api_token").read_text().strip()
    health = httpx.get(f"{base}/api/health", timeout=5).json()
    assert health["status"] == "ok" and health["database"]["ok"] and health["prefect"]["ok"]
    assert health["storage_url"] == any_stack["VTP_STORAGE_URL"]
    assert httpx.get(f"{base}/api/runs", timeout=5).status_code == 401
    listed = httpx.get(f"{base}/api/datasets", headers={"Authorization": f"Bearer {token}"}, timeout=5).json()
    samples = {d["name"]: d for d in listed["items"] if d["name"] in ("shapes-detect", "shapes-classify")}
    assert set(samples) == {"shapes-detect", "shapes-classify"}
    assert all(d["uri"].startswith(f"{any_stack['VTP_STORAGE_URL']}/datasets/") for d in samples.values()), samples
    stored(any_stack, "datasets/index.json", "datasets/shapes-detect/", "datasets/shapes-classify/")
    assert httpx.get(f"{base}/docs", timeout=5).status_code == 200


TERMINAL = ("cancelled", "failed", "crashed", "completed")
LONG = {"model": "yolo11n", "dataset": "shapes-detect", "epochs": 200, "image_size": 64, "batch_size": 4,
        "pretrained": False}


def state_of(client, run_id: str) -> dict:
    return client.get(f"/api/runs/{run_id}").json()


def cancel_once_running(client, run_id: str) -> dict:
    """Wait for the run to train, cancel it through the API, wait for Prefect's final state."""
    wait_for(lambda: state_of(client, run_id)["state"] in ("running", *TERMINAL), timeout=120)
    cancel = client.post(f"/api/runs/{run_id}/cancel")
    assert cancel.status_code == 202, cancel.text
    assert cancel.json()["cancel_requested"] is True
    return wait_for(lambda: (body := state_of(client, run_id))["state"] in TERMINAL and body, timeout=120)


def test_run_created_through_the_api_becomes_a_flow_run(api):
    client, settings = api
    r = client.post("/api/runs", json={"spec": LONG, "client_request_id": "stack-1"})
    assert r.status_code == 201, r.text
    run = r.json()
    assert run["state"] == "queued" and run["prefect_flow_run_id"]

    flow_run = read_flow_run(run["prefect_flow_run_id"], settings)
    params = flow_run.parameters
    assert set(params) == {"spec", "run_id", "api_url", "run_token"}
    assert params["spec"] == run["spec"] and params["run_id"] == run["id"] and params["api_url"] == settings.api_url
    # a claim ticket, never a run token: exchanged once per attempt (tests/api/test_run_token_harvest.py)
    assert verify_run_ticket(params["run_token"], run["id"], settings)["sub"] == run["id"]
    assert flow_run.idempotency_key == run["id"]
    from core.prefect_api import prefect_client

    with prefect_client(settings) as pc:
        assert pc.read_deployment(flow_run.deployment_id).name == "train-ultralytics"

    again = client.post("/api/runs", json={"spec": LONG, "client_request_id": "stack-1"})
    assert again.status_code == 200 and again.json()["id"] == run["id"]
    assert again.json()["prefect_flow_run_id"] == run["prefect_flow_run_id"]

    ended = cancel_once_running(client, run["id"])
    assert ended["state"] == "cancelled" and ended["finished"] and ended["started"]
    assert read_flow_run(run["prefect_flow_run_id"], settings).state.type.value == "CANCELLED"
    assert client.post(f"/api/runs/{run['id']}/cancel").status_code == 409

    retry = client.post(f"/api/runs/{run['id']}/retry")
    assert retry.status_code == 201, retry.text
    second = retry.json()
    assert second["retry_of"] == run["id"] and second["spec"] == run["spec"]
    assert second["prefect_flow_run_id"] not in (None, run["prefect_flow_run_id"])
    assert read_flow_run(second["prefect_flow_run_id"], settings).parameters["run_id"] == second["id"]
    listed = client.get("/api/runs").json()["items"]
    assert [r["id"] for r in listed[:2]] == [second["id"], run["id"]]
    assert cancel_once_running(client, second["id"])["state"] == "cancelled"


def test_a_cancellation_stuck_in_cancelling_is_completed(api, db_session, monkeypatch):
    """Prefect can leave a run cancelled during submission in CANCELLING; vtp settles it."""
    from prefect.client.schemas.objects import State, StateType
    from prefect.states import Pending

    from api import crud, prefect_runs
    from core.prefect_api import prefect_client

    client, settings = api
    with prefect_client(settings) as pc:
        deployment = pc.read_deployment_by_name("train/train-timm")
        flow_run = pc.create_flow_run_from_deployment(deployment.id, parameters={"spec": {"dataset": "shapes-classify"}},
                                                      state=Pending())
        pc.set_flow_run_state(flow_run.id, State(type=StateType.CANCELLING))
    run = crud.create_run(db_session, spec={"dataset": "shapes-classify"})
    crud.update_run(db_session, run=run, state="pending", prefect_flow_run_id=str(flow_run.id), cancel_requested=True)
    assert state_of(client, run.id)["state"] == "pending"  # within the grace period: left alone
    monkeypatch.setattr(prefect_runs, "CANCEL_GRACE_S", 0.0)
    assert state_of(client, run.id)["state"] == "cancelled"
    assert read_flow_run(str(flow_run.id), settings).state.type.value == "CANCELLED"


def test_cancel_of_a_flow_run_deleted_from_prefect(api, db_session):
    from api import crud

    client, _ = api
    run = crud.create_run(db_session, spec={"dataset": "shapes-classify"})
    crud.update_run(db_session, run=run, state="running", prefect_flow_run_id="00000000-0000-4000-8000-000000000000")
    r = client.post(f"/api/runs/{run.id}/cancel")
    assert r.status_code == 202 and r.json()["state"] == "cancelled"
    assert "no longer exists in Prefect" in r.json()["error"]

