"""`vtp up` creates the API token "local" on its first start only, saved for the UI and CLI."""

from __future__ import annotations

import stat

from api.db import session_scope
from api.tokens import authenticate, list_tokens, revoke_token
from cli.stack import Stack


def test_first_start_creates_and_saves_the_local_token(settings):
    stack = Stack(settings)
    token = stack.ensure_api_token()
    saved = stack.api_token_file
    assert token and token.startswith("vtp_") and saved.read_text().strip() == token
    assert stat.S_IMODE(saved.stat().st_mode) == 0o600
    with session_scope(settings) as session:
        assert authenticate(session, token).name == "local"
    assert stack.ensure_api_token() is None, "later starts print no new token"
    with session_scope(settings) as session:
        assert [t.name for t in list_tokens(session)] == ["local"]


def test_a_revoked_local_token_stays_revoked(settings):
    stack = Stack(settings)
    token = stack.ensure_api_token()
    with session_scope(settings) as session:
        revoke_token(session, id_or_prefix=token[:12])
    assert stack.ensure_api_token() is None


def test_a_new_database_gets_a_new_token(settings):
    stack = Stack(settings)
    stack.api_token_file.write_text("vtp_from_another_database\n")
    token = stack.ensure_api_token()
    assert token and stack.api_token_file.read_text().strip() == token


def test_an_unusable_database_is_one_readable_error(settings):
    import pytest

    from tests.integration.conftest import free_port

    bad = settings.model_copy(update={"database_url": f"postgresql+psycopg://vtp:secret@127.0.0.1:{free_port()}/vtp"})
    with pytest.raises(RuntimeError, match="cannot be used .*Connection refused.*check VTP_DATABASE_URL") as e:
        Stack(bad).ensure_api_token()
    assert "secret" not in str(e.value)
