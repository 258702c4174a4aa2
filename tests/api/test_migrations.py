"""The Alembic migrations build the schema the models describe, on an empty SQLite file and an
empty PostgreSQL database, and reverse to nothing."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from api.db import current_revision, downgrade, make_engine, migrate
from api.models import Base

HEAD = "0005"
TABLES = {"projects", "datasets", "runs", "metric_points", "chat_sessions", "chat_messages", "api_tokens"}


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
            return compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata)
    finally:
        engine.dispose()


def test_upgrade_matches_the_models_and_downgrade_removes_everything(empty_database):
    assert tables(empty_database) == set()
    migrate(empty_database)
    assert tables(empty_database) == TABLES | {"alembic_version"}
    assert current_revision(empty_database) == HEAD
    assert schema_drift(empty_database) == []
    migrate(empty_database)  # a second start-up is a no-op
    downgrade(empty_database)
    assert tables(empty_database) <= {"alembic_version"}
    assert current_revision(empty_database) is None
    migrate(empty_database)  # and back up again
    assert tables(empty_database) == TABLES | {"alembic_version"}


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
