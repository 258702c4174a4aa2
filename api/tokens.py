"""API tokens for people and tools: created once (the secret is shown only then), stored as sha256,
listed by name and prefix, revoked by id or prefix."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from api.errors import NotFound
from api.models import ApiToken, utcnow
from api.security import hash_token, new_api_token, token_display_prefix
from core.errors import VtpError

LAST_USED_RESOLUTION = timedelta(minutes=1)  # write last_used at most once a minute per token


@dataclass
class NewToken:
    row: ApiToken
    token: str  # the secret itself: shown once, never stored


class TokenRejected(Exception):
    """Why a presented API token is refused (the message is for the person)."""


def create_token(session: Session, *, name: str) -> NewToken:
    name = name.strip()
    if not name or len(name) > 100:
        raise VtpError("a token name is 1 to 100 characters, e.g. `vtp tokens create laptop`")
    token = new_api_token()
    row = ApiToken(name=name, token_hash=hash_token(token), prefix=token_display_prefix(token))
    session.add(row)
    session.commit()
    return NewToken(row=row, token=token)


def list_tokens(session: Session, *, include_revoked: bool = True) -> list[ApiToken]:
    query = select(ApiToken).order_by(ApiToken.id)
    if not include_revoked:
        query = query.where(ApiToken.revoked.is_(False))
    return list(session.scalars(query))


def revoke_token(session: Session, *, id_or_prefix: str) -> ApiToken:
    """Revoke the token with this id, or the one token whose display prefix starts with it."""
    ref = id_or_prefix.strip()
    conditions = [ApiToken.prefix.startswith(ref, autoescape=True)] if len(ref) >= 6 else []
    if ref.isdigit():
        conditions.append(ApiToken.id == int(ref))
    if not conditions:
        raise VtpError(f"{ref!r} is neither a token id nor a prefix (at least 6 characters, e.g. vtp_AbCd)")
    found = list(session.scalars(select(ApiToken).where(or_(*conditions))))
    if not found:
        raise NotFound(f"no API token has id or prefix {ref!r}: see `vtp tokens list`")
    if len(found) > 1:
        names = ", ".join(f"{t.id} ({t.prefix})" for t in found)
        raise VtpError(f"{ref!r} matches several tokens ({names}): give the id or a longer prefix")
    row = found[0]
    row.revoked = True
    session.commit()
    return row


def authenticate(session: Session, token: str) -> ApiToken:
    """The token's row, or TokenRejected saying why; records when it was last used."""
    row = session.scalar(select(ApiToken).where(ApiToken.token_hash == hash_token(token)))
    if row is None:
        raise TokenRejected(
            "the API token is not valid: check for a typo, or create one with `vtp tokens create NAME` "
            "(the token `vtp up` made is in $VTP_HOME/api_token)"
        )
    if row.revoked:
        raise TokenRejected(
            f"the API token {row.name!r} ({row.prefix}...) was revoked: create a new one with `vtp tokens create NAME`"
        )
    now = utcnow()
    if row.last_used is None or now - row.last_used > LAST_USED_RESOLUTION:
        row.last_used = now
        session.commit()
    return row
