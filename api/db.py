"""Database engine, sessions and migrations.

SQLite (the embedded default) gets foreign keys switched on and a busy timeout; PostgreSQL goes
through psycopg 3 (``postgresql+psycopg://``; settings normalise ``postgres://`` URLs). The schema
is owned by Alembic: :func:`migrate` brings any database to the newest revision and runs at API
start-up, :func:`downgrade` reverses it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from core.settings import Settings, get_settings

log = logging.getLogger("vtp.api.db")

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
# Any constant: serialises concurrent `migrate` calls (several API processes starting) on PostgreSQL.
_PG_MIGRATION_LOCK = 0x767470


def make_engine(url: str, **kwargs: Any) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30}, **kwargs)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    # The pool matches anyio's thread pool (40), which runs the sync routes: with fewer connections
    # than threads, requests queue for a connection under load (measured: bench/callbacks.py).
    kwargs = {"pool_size": 20, "max_overflow": 20, **kwargs}
    return create_engine(url, pool_pre_ping=True, **kwargs)


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA journal_mode=WAL")  # readers do not block the writer (API + CLI at once)
    cur.close()


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def session_scope(settings: Settings | None = None) -> Iterator[Session]:
    """A session outside a request (CLI, `vtp up`): its own engine, disposed afterwards."""
    engine = make_engine((settings or get_settings()).database_url)
    try:
        with session_factory(engine)() as session:
            yield session
    finally:
        engine.dispose()


def alembic_config(url: str) -> Any:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


# vtp's own Alembic version table: Prefect's server keeps Alembic's default (alembic_version), and a
# docker-compose deployment may give both one database
VERSION_TABLE = "vtp_alembic_version"
LEGACY_VERSION_TABLE = "alembic_version"


def _adopt_legacy_version(conn: Any, config: Any) -> None:
    """A database vtp migrated before it had its own version table keeps vtp's revision in
    ``alembic_version``: move that row (one of vtp's revision ids) to :data:`VERSION_TABLE`, and drop
    the old table when nothing else is left in it. Another tool's revisions there are not touched."""
    from alembic.script import ScriptDirectory

    tables = set(inspect(conn).get_table_names())
    if VERSION_TABLE in tables or LEGACY_VERSION_TABLE not in tables:
        return
    script = ScriptDirectory.from_config(config)
    ours = {rev.revision for rev in script.walk_revisions()}
    rows = [r[0] for r in conn.execute(text(f"SELECT version_num FROM {LEGACY_VERSION_TABLE}"))]
    mine = [r for r in rows if r in ours]
    if not mine:
        return
    conn.execute(text(f"CREATE TABLE {VERSION_TABLE} (version_num VARCHAR(32) NOT NULL, "
                      f"CONSTRAINT {VERSION_TABLE}_pkc PRIMARY KEY (version_num))"))
    for rev in mine:
        conn.execute(text(f"INSERT INTO {VERSION_TABLE} (version_num) VALUES (:v)"), {"v": rev})
        conn.execute(text(f"DELETE FROM {LEGACY_VERSION_TABLE} WHERE version_num = :v"), {"v": rev})
    if len(mine) == len(rows):
        conn.execute(text(f"DROP TABLE {LEGACY_VERSION_TABLE}"))
    log.info("moved vtp's migration revision %s from %s to %s", ", ".join(mine), LEGACY_VERSION_TABLE, VERSION_TABLE)


def _run(url: str, action: str, revision: str) -> None:
    from alembic import command

    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_MIGRATION_LOCK})
            config = alembic_config(url)
            _adopt_legacy_version(conn, config)
            config.attributes["connection"] = conn
            getattr(command, action)(config, revision)
    finally:
        engine.dispose()


def migrate(url: str | None = None, revision: str = "head") -> None:
    """Upgrade the database at ``url`` (default: settings) to ``revision``; a no-op when current."""
    _run(url or get_settings().database_url, "upgrade", revision)


def downgrade(url: str | None = None, revision: str = "base") -> None:
    """Reverse migrations down to ``revision`` (``base``: no vtp tables left)."""
    _run(url or get_settings().database_url, "downgrade", revision)


def unusable(url: str, error: Exception) -> str:
    """One line for a person: which database (password hidden), why, and what to check."""
    reason = str(getattr(error, "orig", None) or error).strip().splitlines()
    where = make_url(url).render_as_string(hide_password=True)
    return f"the database {where} cannot be used ({reason[0] if reason else type(error).__name__}); check VTP_DATABASE_URL"


def current_revision(url: str) -> str | None:
    from alembic.runtime.migration import MigrationContext

    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE}).get_current_revision()
    finally:
        engine.dispose()
