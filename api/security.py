"""Secrets the API hands out: API tokens (people) and run tokens (one training run's callbacks).

API tokens are random strings; only their sha256 is stored (see api/tokens.py).

Run tokens are HS256 JWTs signed with ``settings.signing_key()``: ``sub`` is the run id and
``scope`` is ``run``, so a token serves exactly one run and nothing else. They expire: the one
passed with the flow run lives ``run_token_submit_ttl_s`` (it must outlast the queue), renewed ones
``run_token_ttl_s``. :func:`verify_run_token` accepts HS256 only (never ``alg: none``), a valid
signature, an unexpired ``exp`` and the right subject.
"""

from __future__ import annotations

import hashlib
import secrets
import time
import uuid
from typing import Any

import jwt

from core.settings import Settings

API_TOKEN_PREFIX = "vtp_"
RUN_TOKEN_ALGORITHM = "HS256"
RUN_TOKEN_ISSUER = "vtp"
RUN_TOKEN_SCOPE = "run"
_LEEWAY_S = 5  # clock skew between the API and a worker machine


class RunTokenInvalid(Exception):
    """Not a valid run token (malformed, bad signature, wrong algorithm, expired): 401."""

    status_code = 401


class RunTokenForbidden(Exception):
    """A valid run token, but for another run: 403."""

    status_code = 403


def new_api_token() -> str:
    return API_TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def token_display_prefix(token: str) -> str:
    """The first characters, enough to tell tokens apart in a list, far too few to guess the rest."""
    return token[: len(API_TOKEN_PREFIX) + 8]


def mint_run_token(run_id: str, settings: Settings, *, ttl_s: int | None = None) -> str:
    """A run token for ``run_id``; ``ttl_s`` defaults to ``settings.run_token_ttl_s``."""
    now = int(time.time())
    claims = {
        "sub": str(run_id),
        "scope": RUN_TOKEN_SCOPE,
        "iss": RUN_TOKEN_ISSUER,
        "iat": now,
        "exp": now + (settings.run_token_ttl_s if ttl_s is None else ttl_s),
        "jti": uuid.uuid4().hex,
    }
    return jwt.encode(claims, settings.signing_key(), algorithm=RUN_TOKEN_ALGORITHM)


def verify_run_token(token: str, run_id: str, settings: Settings) -> dict[str, Any]:
    """The token's claims if it is a valid, unexpired run token for ``run_id``.

    Raises RunTokenInvalid (-> 401) or RunTokenForbidden (-> 403, a token of another run).
    """
    try:
        claims = jwt.decode(
            token,
            settings.signing_key(),
            algorithms=[RUN_TOKEN_ALGORITHM],
            issuer=RUN_TOKEN_ISSUER,
            leeway=_LEEWAY_S,
            options={"require": ["sub", "exp", "iat", "iss", "scope"]},
        )
    except jwt.ExpiredSignatureError:
        raise RunTokenInvalid("the run token has expired: renew it with a heartbeat before it runs out") from None
    except jwt.InvalidTokenError as e:
        raise RunTokenInvalid(f"the run token is not valid ({e}): use the token vtp gave this run") from None
    if claims.get("scope") != RUN_TOKEN_SCOPE:
        raise RunTokenInvalid("the token is not a run token: use the token vtp gave this run")
    if claims["sub"] != str(run_id):
        raise RunTokenForbidden(f"this run token belongs to another run, not to run {run_id}")
    return claims
