"""GET /metrics: Prometheus text with runs by state, requests by route template, callback timings."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from api import crud
from api.main import create_app
from api.metrics import callback_timer


def samples(text: str) -> dict[tuple[str, tuple], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            found[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return found


def test_metrics_report_runs_requests_and_callbacks(app, client, auth, db):
    for state in ("running", "running", "failed"):
        crud.update_run(db, run=crud.create_run(db, spec={"dataset": "d"}), state=state)
    run_id = crud.list_runs(db)[0][0].id
    client.get(f"/api/runs/{run_id}", headers=auth)
    client.get("/api/runs/does-not-exist", headers=auth)
    with callback_timer(app, "heartbeat"):
        pass
    r = client.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    got = samples(r.text)
    assert got[("vtp_runs", (("state", "running"),))] == 2
    assert got[("vtp_runs", (("state", "failed"),))] == 1
    assert got[("vtp_runs", (("state", "completed"),))] == 0
    route = (("method", "GET"), ("route", "/api/runs/{run_id}"))
    assert got[("vtp_http_requests_total", (*route[:1], route[1], ("status", "200")))] == 1
    assert got[("vtp_http_requests_total", (*route[:1], route[1], ("status", "404")))] == 1
    assert got[("vtp_http_request_seconds_count", route)] == 2
    assert got[("vtp_callback_seconds_count", (("kind", "heartbeat"),))] == 1
    assert not any("does-not-exist" in str(k) for k in got), "raw paths never become labels"


def test_each_app_has_its_own_registry(settings):
    a, b = create_app(settings), create_app(settings)
    assert a.state.metrics.registry is not b.state.metrics.registry
    with callback_timer(a, "done"):
        pass
    key = ("vtp_callback_seconds_count", (("kind", "done"),))
    assert samples(a.state.metrics.render().decode())[key] == 1
    assert key not in samples(b.state.metrics.render().decode())
