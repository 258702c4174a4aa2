"""``python -m cli.prefect_server server start ...``: Prefect's own CLI, with one change for the
SQLite database that ``vtp up`` uses by default: every transaction the server begins is
``BEGIN IMMEDIATE``.

Why: Prefect 3.8 begins most server transactions ``DEFERRED``. In SQLite's WAL mode a deferred
transaction that has read and then writes fails at once with "database is locked" while another
connection writes — the 60 s busy timeout Prefect sets does not apply to that upgrade. On a busy
machine with three workers polling every 0.5 s the write lock is nearly always taken, so worker
heartbeats failed ("Worker channel heartbeat persistence failed"), API calls got 503s and a run was
once crashed at submission. ``IMMEDIATE`` takes the write lock up front, so a transaction waits
(up to the busy timeout) instead of failing. Measured on this 2-core machine with two CPU hogs and
concurrent writers, 150 s each: 50-134 lock errors without it, 0 with it (docs/reliability.md).

This reaches into ``prefect.server.database.configurations.AioSqliteConfiguration``;
tests/unit/test_prefect_server.py fails if a Prefect upgrade moves what it patches. PostgreSQL
(``VTP_PREFECT_DATABASE_URL``) needs none of this and is left alone.
"""

from __future__ import annotations

import contextlib
import runpy
import sys
from collections.abc import AsyncGenerator
from typing import Any


def immediate_sqlite_transactions() -> None:
    """Make Prefect's SQLite configuration begin every transaction IMMEDIATE (idempotent)."""
    from prefect.server.database import configurations

    config = configurations.AioSqliteConfiguration
    if getattr(config.begin_transaction, "_vtp_immediate", False):
        return
    original = config.begin_transaction

    @contextlib.asynccontextmanager
    async def begin_transaction(self: Any, session: Any, with_for_update: bool = False) -> AsyncGenerator[Any, None]:
        async with original(self, session, with_for_update=True) as transaction:
            yield transaction

    begin_transaction._vtp_immediate = True  # type: ignore[attr-defined]
    config.begin_transaction = begin_transaction


def main() -> None:
    immediate_sqlite_transactions()
    sys.argv = ["prefect", *sys.argv[1:]]
    runpy.run_module("prefect", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
