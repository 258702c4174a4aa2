"""Projects CRUD, health, JSON errors and the OpenAPI document."""

from __future__ import annotations

from fastapi.testclient import TestClient


def test_projects_create_list_get(client, auth):
    r = client.post("/api/projects", json={"name": "defects", "description": "weld seams"}, headers=auth)
    assert r.status_code == 201, r.text
    project = r.json()
    assert project["name"] == "defects" and project["description"] == "weld seams" and project["created"].endswith("Z")
    client.post("/api/projects", json={"name": "cracks"}, headers=auth)
    listed = client.get("/api/projects", headers=auth).json()
    assert [p["name"] for p in listed] == ["defects", "cracks"]
    assert client.get(f"/api/projects/{project['id']}", headers=auth).json() == project


def test_project_errors(client, auth):
    client.post("/api/projects", json={"name": "defects"}, headers=auth)
    dup = client.post("/api/projects", json={"name": "defects"}, headers=auth)
    assert dup.status_code == 409 and "exists already" in dup.json()["detail"]
    missing = client.get("/api/projects/4242", headers=auth)
    assert missing.status_code == 404 and "GET /api/projects" in missing.json()["detail"]
    bad = client.post("/api/projects", json={"name": "", "colour": "red"}, headers=auth)
    assert bad.status_code == 422
    assert any(e.startswith("name:") for e in bad.json()["errors"]) and any("colour" in e for e in bad.json()["errors"])
    not_int = client.get("/api/projects/abc", headers=auth)
    assert not_int.status_code == 422 and "project_id" in not_int.json()["detail"]


def test_health_reports_database_prefect_and_storage(client, settings):
    body = client.get("/api/health").json()
    assert body["database"]["ok"] is True
    assert body["prefect"]["ok"] is False and "vtp up" in body["prefect"]["detail"]
    assert body["status"] == "degraded"
    assert body["storage_url"] == settings.storage_url and body["api_url"] == settings.api_url


def test_unknown_endpoint_is_json_404(client):
    r = client.get("/api/nothing-here")
    assert r.status_code == 404 and r.json()["detail"].startswith("no such endpoint")


def test_unexpected_error_is_500_without_details(app, auth, monkeypatch):
    from api import crud

    def boom(*_, **__):
        raise RuntimeError("secret internals /etc/vtp")

    monkeypatch.setattr(crud, "list_projects", boom)
    with TestClient(app, raise_server_exceptions=False) as c:
        r = c.get("/api/projects", headers=auth)
    assert r.status_code == 500
    assert r.json() == {"detail": "internal error in the vtp API; the API log has the details"}
    assert "secret" not in r.text and "Traceback" not in r.text


def test_openapi_documents_tags_summaries_and_trainspec(client):
    doc = client.get("/openapi.json").json()
    assert {t["name"] for t in doc["tags"]} >= {"health", "projects", "datasets", "runs", "metrics"}
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            assert op.get("summary") and op.get("tags"), (method, path)
    assert "TrainSpec" in doc["components"]["schemas"]
    assert doc["components"]["schemas"]["RunCreate"]["properties"]["spec"]["allOf"][0]["$ref"].endswith("/TrainSpec")
    body = doc["paths"]["/api/datasets"]["post"]["requestBody"]["content"]
    assert {"multipart/form-data", "application/json"} <= set(body)
    assert "HTTPBearer" in doc["components"]["securitySchemes"]


def test_malformed_requests_get_readable_errors(client, auth):
    broken = client.post("/api/runs", content=b'{"spec": ', headers={**auth, "Content-Type": "application/json"})
    assert broken.status_code == 422 and "not valid JSON" in broken.json()["detail"]
    wrong_method = client.put("/api/runs", headers=auth)
    assert wrong_method.status_code == 405 and "HTTP method" in wrong_method.json()["detail"]
