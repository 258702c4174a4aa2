"""Every /api route but health needs a valid, unrevoked API token; tokens are stored hashed."""

from __future__ import annotations

import hashlib
import re

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from api.models import ApiToken
from api.tokens import create_token, list_tokens, revoke_token
from cli.main import app as cli
from core.errors import VtpError

PLACEHOLDERS = {"project_id": "1", "dataset_id": "1", "run_id": "00000000-0000-4000-8000-000000000000",
                "path": "checkpoints/best.pt", "session_id": "00000000-0000-4000-8000-000000000001",
                "name": "forklift-detector", "ref": "production", "alias": "production"}


def protected_routes(app) -> list[tuple[str, str]]:
    """Every documented (method, path) under /api but health, with path parameters filled in."""
    found = []
    for template, operations in app.openapi()["paths"].items():
        if template.startswith("/api/") and template != "/api/health":
            path = re.sub(r"{(\w+)}", lambda m: PLACEHOLDERS[m.group(1)], template)
            found.extend((method.upper(), path) for method in operations)
    return found


def test_every_api_route_but_health_needs_a_token(app, client, token):
    routes = protected_routes(app)
    assert len(routes) >= 12  # projects 3, datasets 3, runs 8
    for method, path in routes:
        for headers in ({}, {"Authorization": "Bearer vtp_wrong"}, {"Authorization": "Basic dXNlcjpwdw=="},
                        {"Authorization": f"Bearer {token}x"}):
            r = client.request(method, path, headers=headers)
            assert r.status_code == 401, (method, path, headers, r.text)
            assert r.headers["www-authenticate"] == "Bearer"
            assert "token" in r.json()["detail"]


def test_missing_and_wrong_token_messages_say_what_to_do(client):
    missing = client.get("/api/runs").json()["detail"]
    assert "Authorization: Bearer" in missing and "vtp tokens create" in missing
    wrong = client.get("/api/runs", headers={"Authorization": "Bearer nope"}).json()["detail"]
    assert "not valid" in wrong


def test_health_and_metrics_need_no_token(client):
    assert client.get("/api/health").status_code == 200
    assert client.get("/metrics").status_code == 200
    assert client.get("/openapi.json").status_code == 200


def test_valid_token_passes_and_records_last_use(client, auth, db):
    assert client.get("/api/projects", headers=auth).status_code == 200
    row = db.scalar(select(ApiToken).where(ApiToken.name == "tests"))
    db.refresh(row)
    assert row.last_used is not None


def test_only_the_hash_is_stored(db):
    new = create_token(db, name="laptop")
    row = db.get(ApiToken, new.row.id)
    assert row.token_hash == hashlib.sha256(new.token.encode()).hexdigest()
    assert new.token not in (row.token_hash, row.prefix) and new.token.startswith(row.prefix)
    assert new.token.startswith("vtp_") and len(new.token) > 40


def test_revoked_token_is_refused(client, db, auth, token):
    row = db.scalar(select(ApiToken).where(ApiToken.name == "tests"))
    revoke_token(db, id_or_prefix=str(row.id))
    r = client.get("/api/projects", headers=auth)
    assert r.status_code == 401 and "revoked" in r.json()["detail"]


def test_revoke_by_prefix_and_errors(db):
    a = create_token(db, name="a")
    assert revoke_token(db, id_or_prefix=a.row.prefix).id == a.row.id
    with pytest.raises(VtpError, match="neither"):
        revoke_token(db, id_or_prefix="abc")
    with pytest.raises(VtpError, match="no API token"):
        revoke_token(db, id_or_prefix="999999")
    with pytest.raises(VtpError, match="1 to 100"):
        create_token(db, name="  ")
    assert [t.revoked for t in list_tokens(db)] == [True]


def test_cli_tokens_create_list_revoke(settings, client):
    runner = CliRunner()
    created = runner.invoke(cli, ["tokens", "create", "ci"])
    assert created.exit_code == 0, created.output
    token = created.stdout.strip().splitlines()[0]
    assert token.startswith("vtp_")
    assert client.get("/api/projects", headers={"Authorization": f"Bearer {token}"}).status_code == 200

    listed = runner.invoke(cli, ["tokens", "list"])
    assert listed.exit_code == 0 and "ci" in listed.stdout and token[:12] in listed.stdout
    assert token not in listed.stdout

    revoked = runner.invoke(cli, ["tokens", "revoke", token[:12]])
    assert revoked.exit_code == 0, revoked.output
    assert client.get("/api/projects", headers={"Authorization": f"Bearer {token}"}).status_code == 401
    unknown = runner.invoke(cli, ["tokens", "revoke", "4242"])
    assert unknown.exit_code == 1 and "no API token" in unknown.output


def test_cli_tokens_with_an_unusable_database(monkeypatch):
    from tests.integration.conftest import free_port

    monkeypatch.setenv("VTP_DATABASE_URL", f"postgresql://vtp:pw@127.0.0.1:{free_port()}/vtp")
    out = CliRunner().invoke(cli, ["tokens", "list"])
    assert out.exit_code == 1 and "cannot be used" in out.output and "Traceback" not in out.output
