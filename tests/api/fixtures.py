"""Fixtures for API tests: a real app on a real database (SQLite file, or PostgreSQL when it can be
reached) with real local storage in the per-test VTP_HOME. Imported by tests/api/conftest.py and by
integration tests that need an API next to the `vtp up` stack."""

from __future__ import annotations

import os
import secrets
import tarfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import make_url

from tests.integration.conftest import free_port, unavailable

PG_ADMIN_URL = os.environ.get("VTP_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


def _pg_admin():
    import psycopg

    try:
        return psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as e:
        unavailable(f"PostgreSQL is not reachable at {PG_ADMIN_URL} (set VTP_TEST_POSTGRES_URL): {e}")


def pg_url(name: str) -> str:
    url = make_url(PG_ADMIN_URL).set(drivername="postgresql+psycopg", database=name)
    return url.render_as_string(hide_password=False)


class PgDatabases:
    """Creates databases named vtp_test_<random> and drops them all at the end of the session."""

    def __init__(self):
        self.admin = _pg_admin()
        self.names: list[str] = []

    def create(self) -> str:
        name = f"vtp_test_{secrets.token_hex(5)}"
        self.admin.execute(f'CREATE DATABASE "{name}"')
        self.names.append(name)
        return pg_url(name)

    def drop_all(self) -> None:
        for name in self.names:
            self.admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        self.admin.close()


@pytest.fixture(scope="session")
def pg_databases() -> Iterator[PgDatabases]:
    dbs = PgDatabases()
    yield dbs
    dbs.drop_all()


@pytest.fixture(scope="session")
def pg_database(pg_databases) -> str:
    """One migrated PostgreSQL database for the session's API tests (emptied after each test)."""
    from api.db import migrate

    url = pg_databases.create()
    migrate(url)
    return url


def _empty_tables(url: str) -> None:
    from sqlalchemy import text

    from api.db import make_engine
    from api.models import Base

    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            tables = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
            conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    finally:
        engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
def database_url(request, vtp_home) -> Iterator[str]:
    """The database behind the app: a fresh SQLite file, or the session's PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite:///{vtp_home / 'vtp.db'}"
        return
    url = request.getfixturevalue("pg_database")
    yield url
    _empty_tables(url)


@pytest.fixture
def settings(database_url, vtp_home, monkeypatch):
    """Settings of the app under test. Prefect points at a port where nothing listens."""
    from core.settings import Settings

    monkeypatch.setenv("VTP_DATABASE_URL", database_url)
    monkeypatch.setenv("VTP_PREFECT_PORT", str(free_port()))
    monkeypatch.delenv("VTP_PREFECT_API_URL", raising=False)
    return Settings()


@pytest.fixture
def app(settings):
    from api.main import create_app

    return create_app(settings)


@pytest.fixture
def client(app) -> Iterator[TestClient]:
    with TestClient(app) as c:  # runs the lifespan: migrations applied
        yield c


@pytest.fixture
def db(app, client):
    with app.state.sessions() as session:
        yield session


@pytest.fixture
def token(db) -> str:
    from api.tokens import create_token

    return create_token(db, name="tests").token


@pytest.fixture
def auth(token) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# -- archives -------------------------------------------------------------------------------------


def sample_folder(tmp: Path, sample: str = "shapes-classify") -> Path:
    from tasks.samples import make_sample

    return make_sample(sample, tmp / sample, n_train=6, n_val=3, image_size=32)


def zip_folder(folder: Path, archive: Path, extra: list[tuple[str, bytes]] = ()) -> Path:
    with zipfile.ZipFile(archive, "w") as zf:
        for p in sorted(folder.rglob("*")):
            if p.is_file():
                zf.write(p, f"{folder.name}/{p.relative_to(folder).as_posix()}")
        for name, data in extra:
            zf.writestr(name, data)
    return archive


def tar_with_symlink(folder: Path, archive: Path) -> Path:
    with tarfile.open(archive, "w:gz") as tf:
        tf.add(folder, arcname=folder.name)
        link = tarfile.TarInfo(f"{folder.name}/train/circle/evil.jpg")
        link.type = tarfile.SYMTYPE
        link.linkname = "/etc/passwd"
        tf.addfile(link)
    return archive


def upload(client, auth, name: str | None, archive: Path | None, **fields):
    """POST /api/datasets as multipart; without an archive, a plain field keeps it multipart."""
    data = {k: str(v) for k, v in fields.items()}
    if name is not None:
        data["name"] = name
    files = ({"file": (archive.name, archive.read_bytes(), "application/octet-stream")} if archive
             else {"note": (None, b"no file")})
    return client.post("/api/datasets", data=data, files=files, headers=auth)


def tree(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*")} if root.exists() else set()
