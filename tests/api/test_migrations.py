"""The Alembic migrations build the schema the models describe, on an empty SQLite file and an
empty PostgreSQL database, and reverse to nothing."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from api.db import VERSION_TABLE, current_revision, downgrade, make_engine, migrate
from api.models import Base

HEAD = "0006"
TABLES = {"projects", "datasets", "runs", "metric_points", "chat_sessions", "chat_messages", "api_tokens",
          "registered_models", "model_versions", "model_aliases"}


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
def empty_database(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'empty.db'}"
    return request.getfixturevalue("pg_databases").create()


def tables(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def schema_drift(url: str) -> list:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True, "version_table": VERSION_TABLE}), Base.metadata)
    finally:
        engine.dispose()


def test_upgrade_matches_the_models_and_downgrade_removes_everything(empty_database):
    assert tables(empty_database) == set()
    migrate(empty_database)
    assert tables(empty_database) == TABLES | {"vtp_alembic_version"}
    assert current_revision(empty_database) == HEAD
    assert schema_drift(empty_database) == []
    migrate(empty_database)  # a second start-up is a no-op
    downgrade(empty_database)
    assert tables(empty_database) <= {"vtp_alembic_version"}
    assert current_revision(empty_database) is None
    migrate(empty_database)  # and back up again
    assert tables(empty_database) == TABLES | {"vtp_alembic_version"}


def test_app_start_up_migrates(empty_database, monkeypatch, vtp_home):
    from fastapi.testclient import TestClient

    from api.main import create_app
    from core.settings import Settings

    monkeypatch.setenv("VTP_DATABASE_URL", empty_database)
    app = create_app(Settings())
    assert tables(empty_database) == set()
    with TestClient(app) as client:
        assert client.get("/api/health").json()["database"]["ok"] is True
    assert current_revision(empty_database) == HEAD


def test_sqlite_enforces_foreign_keys(tmp_path):
    from sqlalchemy.exc import IntegrityError

    from api.db import session_factory
    from api.models import MetricPoint

    url = f"sqlite:///{tmp_path / 'fk.db'}"
    migrate(url)
    engine = make_engine(url)
    with session_factory(engine)() as session:
        session.add(MetricPoint(run_id="no-such-run", epoch=1, name="loss", value=1.0))
        with pytest.raises(IntegrityError):
            session.commit()
    engine.dispose()


def test_upgrade_keeps_rows_written_under_the_first_revision(empty_database):
    """A database made by revision 0001 (the first release) upgrades with its runs intact."""
    from sqlalchemy import text

    migrate(empty_database, revision="0001")
    engine = make_engine(empty_database)
    try:
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO runs (id, spec, state, created, epochs_done) "
                              "VALUES ('r1', '{}', 'running', CURRENT_TIMESTAMP, 0)"))
        migrate(empty_database)
        with engine.connect() as conn:
            assert conn.execute(text("SELECT state, cancel_requested FROM runs")).one() == ("running", False)
        downgrade(empty_database, revision="0001")
        with engine.connect() as conn:
            assert conn.execute(text("SELECT id FROM runs")).scalar_one() == "r1"
    finally:
        engine.dispose()


def _sql(url: str, *statements: str) -> list:
    from sqlalchemy import text

    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            rows = [conn.execute(text(st)).fetchall() if st.lstrip().upper().startswith("SELECT")
                    else conn.execute(text(st)) for st in statements]
        return [r for r in rows if isinstance(r, list)]
    finally:
        engine.dispose()


def test_a_foreign_revision_in_alembic_version_does_not_stop_vtp(tmp_path):
    """Issue 18: a database another Alembic user (Prefect's server) keeps its revision in shares
    the default table; vtp keeps its own and migrates."""
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    _sql(url, "CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL PRIMARY KEY)",
         "INSERT INTO alembic_version VALUES ('3e1eb8281d5e')")
    migrate(url)
    assert current_revision(url) == HEAD
    assert tables(url) == TABLES | {"vtp_alembic_version", "alembic_version"}
    assert _sql(url, "SELECT version_num FROM alembic_version") == [[("3e1eb8281d5e",)]]  # untouched


@pytest.mark.parametrize("foreign", [False, True])
def test_a_database_migrated_before_is_adopted(tmp_path, foreign):
    """vtp's revision in the old shared table moves to vtp's own; another tool's row stays."""
    url = f"sqlite:///{tmp_path / 'old.db'}"
    migrate(url, "0004")
    _sql(url, "ALTER TABLE vtp_alembic_version RENAME TO alembic_version",
         *(["INSERT INTO alembic_version VALUES ('3e1eb8281d5e')"] if foreign else []))
    migrate(url)  # adopts 0004 from alembic_version, then upgrades to HEAD
    assert current_revision(url) == HEAD
    assert [d for d in schema_drift(url) if "alembic_version" not in str(d)] == []
    if foreign:
        assert _sql(url, "SELECT version_num FROM alembic_version") == [[("3e1eb8281d5e",)]]
    else:
        assert "alembic_version" not in tables(url)


@pytest.mark.integration
@pytest.mark.parametrize("vtp_first", [False, True])
def test_prefect_server_and_vtp_migrate_one_postgres_database(pg_databases, vtp_first, tmp_path):
    """docker-compose gives Prefect's server and the vtp API one PostgreSQL database: both
    migrate it, in either order, and each finds its own revision afterwards."""
    import os
    import subprocess
    import sys

    from sqlalchemy.engine import make_url

    url = pg_databases.create()
    prefect_url = make_url(url).set(drivername="postgresql+asyncpg").render_as_string(hide_password=False)
    env = {**os.environ, "PREFECT_API_DATABASE_CONNECTION_URL": prefect_url, "PREFECT_HOME": str(tmp_path),
           "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}

    def prefect_upgrade() -> None:
        out = subprocess.run([sys.executable, "-m", "prefect", "server", "database", "upgrade", "-y"], env=env,
                             capture_output=True, text=True, timeout=600)
        assert out.returncode == 0, out.stdout + out.stderr

    if vtp_first:
        migrate(url)
    prefect_upgrade()
    migrate(url)  # the step that failed with "Can't locate revision" when both used alembic_version
    prefect_upgrade()  # and Prefect's server starts again over vtp's tables
    assert current_revision(url) == HEAD
    names = tables(url)
    assert {"alembic_version", "vtp_alembic_version", "flow_run", "deployment"} | TABLES <= names
    prefect_rev = _sql(url, "SELECT version_num FROM alembic_version")[0]
    assert len(prefect_rev) == 1 and prefect_rev[0][0] != HEAD
