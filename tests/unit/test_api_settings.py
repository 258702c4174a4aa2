"""API settings: embedded defaults, derived URLs, and a secret key generated once per VTP_HOME."""

from __future__ import annotations

import stat

import pytest

from core.settings import Settings


def test_defaults(vtp_home, monkeypatch):
    for var in ("VTP_DATABASE_URL", "VTP_API_URL", "VTP_API_PORT", "VTP_REDIS_URL", "VTP_SECRET_KEY"):
        monkeypatch.delenv(var, raising=False)
    s = Settings()
    assert s.database_url == f"sqlite:///{vtp_home}/vtp.db"
    assert (s.api_host, s.api_port, s.api_url) == ("127.0.0.1", 8000, "http://127.0.0.1:8000")
    assert s.max_upload_bytes == 2 * 1024**3 and s.redis_url is None


def test_api_url_follows_host_and_port(monkeypatch):
    monkeypatch.setenv("VTP_API_HOST", "0.0.0.0")
    monkeypatch.setenv("VTP_API_PORT", "8123")
    assert Settings().api_url == "http://127.0.0.1:8123"
    monkeypatch.setenv("VTP_API_URL", "https://vtp.example.org/")
    assert Settings().api_url == "https://vtp.example.org"


def test_secret_key_generated_once_with_mode_0600(vtp_home, monkeypatch):
    monkeypatch.delenv("VTP_SECRET_KEY", raising=False)
    s = Settings()
    assert not (vtp_home / "secret_key").exists()  # lazily: only when something is signed
    key = s.signing_key()
    path = vtp_home / "secret_key"
    assert len(key) >= 48 and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert Settings().signing_key() == key
    assert key not in repr(s)


def test_secret_key_from_environment_wins(vtp_home, monkeypatch):
    monkeypatch.setenv("VTP_SECRET_KEY", "from-env-0123456789abcdef0123456789")
    s = Settings()
    assert s.signing_key() == "from-env-0123456789abcdef0123456789"
    assert "from-env" not in repr(s) and not (vtp_home / "secret_key").exists()


@pytest.mark.parametrize("url,expected", [
    ("postgres://u:p@db:5432/vtp", "postgresql+psycopg://u:p@db:5432/vtp"),
    ("postgresql://u@db/vtp", "postgresql+psycopg://u@db/vtp"),
    ("postgresql+psycopg://u@db/vtp", "postgresql+psycopg://u@db/vtp"),
    ("sqlite:////tmp/x.db", "sqlite:////tmp/x.db"),
])
def test_settings_normalise_database_url(url, expected, monkeypatch):
    monkeypatch.setenv("VTP_DATABASE_URL", url)
    assert Settings().database_url == expected
