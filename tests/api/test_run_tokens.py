"""Run tokens: HS256 JWTs for one run's callbacks. Valid for their run only (403 elsewhere);
alg none, a wrong key, an expired or malformed token: 401."""

from __future__ import annotations

import base64
import json
import time

import jwt
import pytest
from fastapi import APIRouter, FastAPI
from fastapi.testclient import TestClient

from api.deps import RunTokenClaims
from api.errors import install_handlers
from api.security import RunTokenForbidden, RunTokenInvalid, mint_run_token, verify_run_token
from core.settings import Settings

RUN_A = "11111111-1111-4111-8111-111111111111"
RUN_B = "22222222-2222-4222-8222-222222222222"


@pytest.fixture
def settings(vtp_home, monkeypatch):
    monkeypatch.delenv("VTP_SECRET_KEY", raising=False)
    return Settings()


def _b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def test_valid_token_for_its_run(settings):
    token = mint_run_token(RUN_A, settings)
    claims = verify_run_token(token, RUN_A, settings)
    assert claims["sub"] == RUN_A and claims["scope"] == "run"
    assert 0 < claims["exp"] - time.time() <= settings.run_token_ttl_s
    assert jwt.get_unverified_header(token)["alg"] == "HS256"


def test_submit_ttl_is_longer(settings):
    token = mint_run_token(RUN_A, settings, ttl_s=settings.run_token_submit_ttl_s)
    assert verify_run_token(token, RUN_A, settings)["exp"] - time.time() > settings.run_token_ttl_s


def test_token_of_run_a_on_run_b_is_forbidden(settings):
    with pytest.raises(RunTokenForbidden) as e:
        verify_run_token(mint_run_token(RUN_A, settings), RUN_B, settings)
    assert e.value.status_code == 403


def test_alg_none_is_rejected(settings):
    claims = {"sub": RUN_A, "scope": "run", "iss": "vtp", "iat": int(time.time()), "exp": int(time.time()) + 600}
    for alg in ("none", "None", "NONE"):
        unsigned = f"{_b64({'alg': alg, 'typ': 'JWT'})}.{_b64(claims)}."
        with pytest.raises(RunTokenInvalid):
            verify_run_token(unsigned, RUN_A, settings)


def test_other_algorithms_and_wrong_keys_are_rejected(settings):
    claims = {"sub": RUN_A, "scope": "run", "iss": "vtp", "iat": int(time.time()), "exp": int(time.time()) + 600}
    forged = jwt.encode(claims, "not-the-key-" * 4, algorithm="HS256")
    hs512 = jwt.encode(claims, settings.signing_key(), algorithm="HS512")
    tampered = mint_run_token(RUN_A, settings)
    head, body, sig = tampered.split(".")
    tampered = f"{head}.{_b64({**claims, 'sub': RUN_B})}.{sig}"
    for token in (forged, hs512, tampered):
        with pytest.raises(RunTokenInvalid) as e:
            verify_run_token(token, RUN_A, settings)
        assert e.value.status_code == 401


def test_expired_token_is_rejected(settings):
    token = mint_run_token(RUN_A, settings, ttl_s=1)
    past = {"sub": RUN_A, "scope": "run", "iss": "vtp", "iat": int(time.time()) - 120, "exp": int(time.time()) - 60}
    old = jwt.encode(past, settings.signing_key(), algorithm="HS256")
    with pytest.raises(RunTokenInvalid, match="expired"):
        verify_run_token(old, RUN_A, settings)
    assert verify_run_token(token, RUN_A, settings)  # within its second (plus leeway)


def test_malformed_and_foreign_tokens_are_rejected(settings):
    now = int(time.time())
    no_scope = jwt.encode({"sub": RUN_A, "iss": "vtp", "iat": now, "exp": now + 60}, settings.signing_key(), "HS256")
    other_scope = jwt.encode({"sub": RUN_A, "iss": "vtp", "iat": now, "exp": now + 60, "scope": "admin"},
                             settings.signing_key(), "HS256")
    no_exp = jwt.encode({"sub": RUN_A, "iss": "vtp", "iat": now, "scope": "run"}, settings.signing_key(), "HS256")
    for token in ("", "abc", "a.b.c", no_scope, other_scope, no_exp):
        with pytest.raises(RunTokenInvalid):
            verify_run_token(token, RUN_A, settings)


def test_a_new_secret_invalidates_old_tokens(settings, monkeypatch):
    token = mint_run_token(RUN_A, settings)
    monkeypatch.setenv("VTP_SECRET_KEY", "a-different-secret-0123456789abcdef")
    with pytest.raises(RunTokenInvalid):
        verify_run_token(token, RUN_A, Settings())


def test_run_token_dependency_for_callback_routes(settings):
    """What the callback routes will do: RunTokenClaims on /api/internal/runs/{run_id}/..."""
    app = FastAPI()
    app.state.settings = settings
    install_handlers(app)
    router = APIRouter()

    @router.post("/api/internal/runs/{run_id}/heartbeat")
    def heartbeat(run_id: str, claims: RunTokenClaims) -> dict:
        return {"run_id": run_id, "sub": claims["sub"]}

    app.include_router(router)
    client = TestClient(app)
    url_a = f"/api/internal/runs/{RUN_A}/heartbeat"
    ok = client.post(url_a, headers={"Authorization": f"Bearer {mint_run_token(RUN_A, settings)}"})
    assert ok.status_code == 200 and ok.json() == {"run_id": RUN_A, "sub": RUN_A}
    other = client.post(f"/api/internal/runs/{RUN_B}/heartbeat",
                        headers={"Authorization": f"Bearer {mint_run_token(RUN_A, settings)}"})
    assert other.status_code == 403 and "another run" in other.json()["detail"]
    assert client.post(url_a).status_code == 401
    bad = client.post(url_a, headers={"Authorization": "Bearer a.b.c"})
    assert bad.status_code == 401 and bad.headers["www-authenticate"] == "Bearer"
