"""The embedded Prefect server's SQLite transactions begin IMMEDIATE (cli/prefect_server.py): a
transaction that reads and then writes waits for another writer instead of failing with
"database is locked" — what broke worker heartbeats and API calls on a busy machine (issue 12)."""

from __future__ import annotations

import asyncio

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import OperationalError

from tests.aio import run_async


async def read_then_write_while_another_writes(path) -> None:
    from prefect.server.database.configurations import AioSqliteConfiguration

    config = AioSqliteConfiguration(connection_url=f"sqlite+aiosqlite:///{path}")
    engine = await config.engine()
    async with engine.begin() as conn:
        await conn.execute(sa.text("CREATE TABLE IF NOT EXISTS beats (n INTEGER)"))
    holding = asyncio.Event()

    async def writer() -> None:  # another worker's heartbeat, holding the write lock a while
        session = await config.session(engine)
        async with config.begin_transaction(session, with_for_update=True):
            await session.execute(sa.text("INSERT INTO beats VALUES (1)"))
            holding.set()
            await asyncio.sleep(1.0)
        await session.close()

    async def reader_then_writer() -> None:  # read the pool, then write the worker row
        await holding.wait()
        session = await config.session(engine)
        async with config.begin_transaction(session):
            await session.execute(sa.text("SELECT count(*) FROM beats"))
            await session.execute(sa.text("INSERT INTO beats VALUES (2)"))
        await session.close()

    try:
        await asyncio.gather(writer(), reader_then_writer())
    finally:
        await engine.dispose()


def test_prefect_sqlite_upgrade_fails_without_and_waits_with_immediate(tmp_path, monkeypatch):
    from prefect.server.database import configurations

    from cli.prefect_server import immediate_sqlite_transactions

    monkeypatch.setattr(configurations.AioSqliteConfiguration, "begin_transaction",
                        configurations.AioSqliteConfiguration.begin_transaction)  # restored afterwards
    with pytest.raises(OperationalError, match="database is locked"):
        run_async(read_then_write_while_another_writes, tmp_path / "plain.db")

    immediate_sqlite_transactions()
    immediate_sqlite_transactions()  # idempotent
    run_async(read_then_write_while_another_writes, tmp_path / "immediate.db")  # waits, then writes
