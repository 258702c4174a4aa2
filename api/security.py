"""Secrets the API hands out: API tokens (people) and run tokens (one training run's callbacks).

API tokens are random strings; only their sha256 is stored (see api/tokens.py).

Run tokens are HS256 JWTs signed with ``settings.signing_key()``: ``sub`` is the run id and
``scope`` is ``run``, so a token serves exactly one run and nothing else. They live
``run_token_ttl_s`` and are renewed by every heartbeat. :func:`verify_run_token` accepts HS256
only (never ``alg: none``), a valid signature, an unexpired ``exp`` and the right subject.

No run token is ever a Prefect flow-run parameter (anyone who can read Prefect's flow runs would
harvest it). The flow run gets a *claim ticket* instead (:func:`mint_run_ticket`): a JWT with scope
``claim`` and the prefix ``vtpclaim.``, which no callback accepts as a token. The flow exchanges it
once per attempt at ``POST /api/internal/runs/{run_id}/token`` (see api/runs_service.claim_run_token)
for a real run token; a ticket expires after ``run_token_submit_ttl_s`` (the longest a queued run
may wait).
"""

from __future__ import annotations

import hashlib
import secrets
import time
import uuid
from typing import Any

import jwt

from core.contracts import RUN_TICKET_PREFIX, is_run_ticket
from core.settings import Settings

API_TOKEN_PREFIX = "vtp_"
RUN_TOKEN_ALGORITHM = "HS256"
RUN_TOKEN_ISSUER = "vtp"
RUN_TOKEN_SCOPE = "run"
RUN_TICKET_SCOPE = "claim"
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


def _mint(run_id: str, scope: str, ttl_s: int, settings: Settings) -> str:
    now = int(time.time())
    claims = {"sub": str(run_id), "scope": scope, "iss": RUN_TOKEN_ISSUER, "iat": now, "exp": now + ttl_s,
              "jti": uuid.uuid4().hex}
    return jwt.encode(claims, settings.signing_key(), algorithm=RUN_TOKEN_ALGORITHM)


def _verify(token: str, run_id: str, settings: Settings, *, scope: str, what: str, expired: str,
            invalid: str) -> dict[str, Any]:
    """Claims of a valid, unexpired JWT of ``scope`` for ``run_id``; RunTokenInvalid / RunTokenForbidden."""
    try:
        claims = jwt.decode(token, settings.signing_key(), algorithms=[RUN_TOKEN_ALGORITHM], issuer=RUN_TOKEN_ISSUER,
                            leeway=_LEEWAY_S, options={"require": ["sub", "exp", "iat", "iss", "scope"]})
    except jwt.ExpiredSignatureError:
        raise RunTokenInvalid(f"the {what} has expired: {expired}") from None
    except jwt.InvalidTokenError as e:
        raise RunTokenInvalid(f"the {what} is not valid ({e}){invalid}") from None
    if claims.get("scope") != scope:
        raise RunTokenInvalid(f"the token is not a {what}{invalid}")
    if claims["sub"] != str(run_id):
        raise RunTokenForbidden(f"this {what} belongs to another run, not to run {run_id}")
    return claims


def mint_run_token(run_id: str, settings: Settings, *, ttl_s: int | None = None) -> str:
    """A run token for ``run_id``; ``ttl_s`` defaults to ``settings.run_token_ttl_s``."""
    return _mint(run_id, RUN_TOKEN_SCOPE, settings.run_token_ttl_s if ttl_s is None else ttl_s, settings)


def verify_run_token(token: str, run_id: str, settings: Settings) -> dict[str, Any]:
    """The token's claims if it is a valid, unexpired run token for ``run_id``.

    Raises RunTokenInvalid (-> 401) or RunTokenForbidden (-> 403, a token of another run).
    """
    return _verify(token, run_id, settings, scope=RUN_TOKEN_SCOPE, what="run token",
                   expired="renew it with a heartbeat before it runs out", invalid=": use the token vtp gave this run")


def mint_run_ticket(run_id: str, settings: Settings, *, ttl_s: int | None = None) -> str:
    """The claim ticket passed with the flow run of ``run_id``: exchanged for a run token once per
    attempt; lives ``settings.run_token_submit_ttl_s`` by default."""
    ttl = settings.run_token_submit_ttl_s if ttl_s is None else ttl_s
    return RUN_TICKET_PREFIX + _mint(run_id, RUN_TICKET_SCOPE, ttl, settings)


def verify_run_ticket(ticket: str, run_id: str, settings: Settings) -> dict[str, Any]:
    """The claims of a valid, unexpired claim ticket for ``run_id`` (401 / 403 as for run tokens)."""
    if not is_run_ticket(ticket):
        raise RunTokenInvalid("this is not a claim ticket (a one-time token for this run): send the ticket vtp "
                              "passed with the flow run")
    return _verify(ticket[len(RUN_TICKET_PREFIX):], run_id, settings, scope=RUN_TICKET_SCOPE, what="claim ticket",
                   expired="start the run again (VTP_RUN_TOKEN_SUBMIT_TTL_S)", invalid="")
