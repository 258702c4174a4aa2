"""Session fixtures shared by every test folder (registered once, in tests/conftest.py): moto's S3
server and a whole `vtp up` stack. One definition, so one stack per test session."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.integration.conftest import free_port, unavailable


def start_moto(host: str, port: int, log_path: Path) -> tuple[subprocess.Popen, str]:
    """moto's S3 server as a separate process on ``host:port``, answering; (process, its URL)."""
    log = open(log_path, "wb")  # noqa: SIM115 - moto writes it until it is stopped
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", host, "-p", str(port)],
                            stdout=log, stderr=subprocess.STDOUT)
    url = f"http://{host}:{port}"
    for _ in range(100):
        try:
            httpx.get(url, timeout=0.5)
            return proc, url
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    unavailable("moto's S3 server did not start")


@pytest.fixture(scope="session")
def s3_endpoint(tmp_path_factory):
    """moto's S3 server as a separate process on 127.0.0.1, with one bucket `vtp`."""
    proc, url = start_moto("127.0.0.1", free_port(), tmp_path_factory.mktemp("moto") / "moto.log")
    creds = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1"}
    os.environ.update(creds)
    import boto3

    boto3.client("s3", endpoint_url=url, region_name="us-east-1").create_bucket(Bucket="vtp")
    yield url
    proc.terminate()
    proc.wait(10)



@pytest.fixture
def s3_storage(s3_endpoint, monkeypatch):
    """Point vtp's storage at a fresh prefix of the moto bucket."""
    prefix = f"s3://vtp/t{time.monotonic_ns()}"
    monkeypatch.setenv("VTP_STORAGE_URL", prefix)
    monkeypatch.setenv("VTP_S3_ENDPOINT_URL", s3_endpoint)
    return prefix



def _prefect_postgres() -> str | None:
    """A fresh PostgreSQL database for the stack's Prefect server, or None where PostgreSQL is not
    reachable (SQLite then, vtp's zero-configuration default). `vtp up` on SQLite is tested on its
    own (tests/integration/test_cli.py)."""
    import secrets

    import psycopg

    admin = os.environ.get("VTP_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
    name = f"vtp_prefect_{secrets.token_hex(5)}"
    try:
        with psycopg.connect(admin, autocommit=True, connect_timeout=3) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError:
        return None
    return admin.rsplit("/", 1)[0] + f"/{name}"


@pytest.fixture(scope="session")
def stack(tmp_path_factory):
    """`vtp up`, for real: yields the stack's environment (VTP_HOME, ports, Prefect URL)."""
    from cli.stack import Stack
    from core.settings import Settings

    home = tmp_path_factory.mktemp("stack-home")
    port = free_port()
    env = {"VTP_HOME": str(home), "VTP_PREFECT_PORT": str(port), "VTP_API_PORT": str(free_port()),
           "VTP_UI_PORT": str(free_port()),
           # crash recovery within a test's patience: retry after ~1 s, a silent trainer is stale after 30 s (heartbeats every 2 s)
           "VTP_CRASH_RETRY_DELAY_S": "1", "VTP_STALE_AFTER_S": "30", "VTP_HEARTBEAT_EVERY_S": "2"}
    pg = _prefect_postgres()
    if pg:  # the production setup, and the one a busy machine needs (SQLite locks under load)
        env["VTP_PREFECT_DATABASE_URL"] = pg
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    os.environ.pop("VTP_STORAGE_URL", None)
    stack = Stack(Settings())
    try:
        stack.up(echo=lambda *_: None)
    except Exception as e:  # noqa: BLE001 - reported as the reason
        stack.stop()
        unavailable(f"the vtp stack did not start: {e}")
    finally:
        for k, v in old.items():
            os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)
    from prefect.logging.handlers import APILogHandler
    from prefect.settings import PREFECT_API_AUTH_STRING, PREFECT_API_URL, temporary_settings

    # The stack's Prefect server requires its auth string (issue 13): this process's Prefect
    # clients send it from here on, and so do the processes the tests start.
    auth = stack.settings.prefect_auth()
    os.environ["PREFECT_API_AUTH_STRING"] = auth
    with temporary_settings(updates={PREFECT_API_AUTH_STRING: auth}):
        yield {**env, "PREFECT_API_URL": stack.settings.prefect_api_url, "API_URL": stack.settings.api_url,
               "home": Path(home), "PREFECT_AUTH": auth}
        with temporary_settings(updates={PREFECT_API_URL: stack.settings.prefect_api_url}):
            APILogHandler().flush()  # deliver this process's flow logs before the server goes away
    os.environ.pop("PREFECT_API_AUTH_STRING", None)
    stack.stop()
    if pg:
        _drop_database(pg)


def _drop_database(url: str) -> None:
    import contextlib

    import psycopg

    admin = os.environ.get("VTP_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
    with contextlib.suppress(psycopg.Error), psycopg.connect(admin, autocommit=True, connect_timeout=3) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)')



@pytest.fixture
def stack_env(stack, monkeypatch):
    """Run a test against the session's stack: same VTP_HOME and Prefect port as its workers."""
    monkeypatch.setenv("VTP_HOME", stack["VTP_HOME"])
    monkeypatch.setenv("VTP_PREFECT_PORT", stack["VTP_PREFECT_PORT"])
    monkeypatch.setenv("VTP_API_PORT", stack["VTP_API_PORT"])
    monkeypatch.delenv("VTP_STORAGE_URL", raising=False)
    return stack
