"""API tests run on SQLite and on PostgreSQL (marked integration): see tests/api/fixtures.py."""

from tests.api.fixtures import (  # noqa: F401 - fixtures
    app,
    auth,
    client,
    database_url,
    db,
    pg_database,
    pg_databases,
    settings,
    token,
)
