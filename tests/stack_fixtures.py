"""Session fixtures shared by every test folder (registered once, in tests/conftest.py): moto's S3
server and the `vtp up` stacks. One definition, so one stack of each kind per test session.

``stack`` keeps its storage under its VTP_HOME (file://); ``stack_env`` runs a test on it.
``any_stack`` runs a test once on each backend: on a stack started with ``--storage
s3://vtp-stack/stack`` on moto's S3 server (a bucket that `vtp up` creates), and on ``stack``. The
S3 stack is up only while the tests that run on it do (``backend_stack``)."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.integration.conftest import free_port, unavailable

S3_CREDS = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1"}
STACK_BUCKET = "vtp-stack"  # the S3 stack's bucket: not made beforehand, `vtp up` creates it
STACK_S3_URL = f"s3://{STACK_BUCKET}/stack"


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
    os.environ.update(S3_CREDS)
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


@contextlib.contextmanager
def _vtp_up(home: Path, storage: dict[str, str]) -> Iterator[dict]:
    """`vtp up`, for real, in ``home`` with the storage settings ``storage`` (none: file:// under
    ``home``, the default; VTP_STORAGE_URL set beforehand is what `vtp up --storage` does). Yields the
    stack's environment (VTP_HOME, ports, storage, Prefect URL and auth string), with ``said``, what
    `vtp up` printed, and ``backend``, the storage's scheme."""
    from cli.stack import Stack
    from core.settings import Settings

    env = {"VTP_HOME": str(home), "VTP_PREFECT_PORT": str(free_port()), "VTP_API_PORT": str(free_port()),
           "VTP_UI_PORT": str(free_port()),
           # crash recovery within a test's patience: retry after ~1 s, a silent trainer is stale after 30 s (heartbeats every 2 s)
           "VTP_CRASH_RETRY_DELAY_S": "1", "VTP_STALE_AFTER_S": "30", "VTP_HEARTBEAT_EVERY_S": "2", **storage}
    pg = _prefect_postgres()
    if pg:  # the production setup, and the one a busy machine needs (SQLite locks under load)
        env["VTP_PREFECT_DATABASE_URL"] = pg
    unset = [key for key in ("VTP_STORAGE_URL", "VTP_S3_ENDPOINT_URL") if key not in env]
    old = {k: os.environ.get(k) for k in [*env, *unset]}
    os.environ.update(env)
    for key in unset:
        os.environ.pop(key, None)
    stack = Stack(Settings())
    said: list[str] = []
    try:
        stack.up(echo=said.append)
    except Exception as e:  # noqa: BLE001 - reported as the reason
        stack.stop()
        if pg:
            _drop_database(pg)
        unavailable(f"the vtp stack did not start: {e}")
    finally:
        for k, v in old.items():
            os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)
    settings = stack.settings
    auth = settings.prefect_auth()
    try:
        yield {**env, "PREFECT_API_URL": settings.prefect_api_url, "API_URL": settings.api_url, "home": Path(home),
               "PREFECT_AUTH": auth, "VTP_STORAGE_URL": settings.storage_url, "said": "\n".join(said),
               "backend": settings.storage_url.split("://", 1)[0]}
    finally:
        from prefect.logging.handlers import APILogHandler
        from prefect.settings import PREFECT_API_AUTH_STRING, PREFECT_API_URL, temporary_settings

        with temporary_settings(updates={PREFECT_API_URL: settings.prefect_api_url, PREFECT_API_AUTH_STRING: auth}):
            APILogHandler().flush()  # deliver this process's flow logs before the server goes away
        stack.stop()
        if pg:
            _drop_database(pg)


@pytest.fixture(scope="session")
def stack(tmp_path_factory):
    """`vtp up`, for real, storage under its VTP_HOME: yields the stack's environment (VTP_HOME,
    ports, Prefect URL). This process's Prefect clients (and the processes tests start) send its auth
    string from here on."""
    from prefect.settings import PREFECT_API_AUTH_STRING, temporary_settings

    with _vtp_up(tmp_path_factory.mktemp("stack-home"), {}) as env:
        # The stack's Prefect server requires its auth string (issue 13).
        os.environ["PREFECT_API_AUTH_STRING"] = env["PREFECT_AUTH"]
        with temporary_settings(updates={PREFECT_API_AUTH_STRING: env["PREFECT_AUTH"]}):
            yield env
        os.environ.pop("PREFECT_API_AUTH_STRING", None)


@contextlib.contextmanager
def _s3_stack(tmp_path_factory, endpoint: str) -> Iterator[dict]:
    """`vtp up --storage s3://vtp-stack/stack` on moto's S3 server at ``endpoint`` (VTP_S3_ENDPOINT_URL;
    credentials and region AWS_*), the bucket missing until `vtp up` creates it. Once its tests are
    done, its local storage folder must still not exist: nothing of any of them was stored there."""
    import boto3

    s3 = boto3.client("s3", endpoint_url=endpoint, region_name=S3_CREDS["AWS_DEFAULT_REGION"])
    assert STACK_BUCKET not in {b["Name"] for b in s3.list_buckets()["Buckets"]}
    storage = {"VTP_STORAGE_URL": STACK_S3_URL, "VTP_S3_ENDPOINT_URL": endpoint, **S3_CREDS}
    with _vtp_up(tmp_path_factory.mktemp("stack-s3-home"), storage) as env:
        assert f"storage:  {STACK_S3_URL} (bucket {STACK_BUCKET} created)" in env["said"], env["said"]
        yield env
        local = env["home"] / "storage"
        assert not local.exists(), f"the S3 stack's tests wrote into {local}: {sorted(local.rglob('*'))[:20]}"


@pytest.fixture(scope="session", params=["s3", "file"])
def backend_stack(request, tmp_path_factory):
    """The stack ``any_stack`` runs a test on: one started on S3 (``s3``), or the session's file://
    ``stack`` (``file``). Session-scoped and parametrized, so pytest runs all the tests of one backend
    before those of the other, S3 first, and finishes the S3 instance (stops that stack) before the
    file:// group starts: it does not idle through the rest of the session. Its Prefect auth string
    is applied per test, by ``any_stack``; the file:// stack's stays this process's default."""
    if request.param == "file":
        yield request.getfixturevalue("stack")
        return
    with _s3_stack(tmp_path_factory, request.getfixturevalue("s3_endpoint")) as env:
        yield env


def _drop_database(url: str) -> None:
    import psycopg

    admin = os.environ.get("VTP_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
    with contextlib.suppress(psycopg.Error), psycopg.connect(admin, autocommit=True, connect_timeout=3) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)')


def _use(stack: dict, monkeypatch) -> Iterator[dict]:
    """This test's environment and Prefect client on ``stack``: its VTP_HOME, ports, storage and auth string."""
    from prefect.settings import PREFECT_API_AUTH_STRING, temporary_settings

    for key in ("VTP_HOME", "VTP_PREFECT_PORT", "VTP_API_PORT", "VTP_STORAGE_URL"):
        monkeypatch.setenv(key, stack[key])
    if "VTP_S3_ENDPOINT_URL" in stack:
        monkeypatch.setenv("VTP_S3_ENDPOINT_URL", stack["VTP_S3_ENDPOINT_URL"])
    else:
        monkeypatch.delenv("VTP_S3_ENDPOINT_URL", raising=False)
    monkeypatch.setenv("PREFECT_API_AUTH_STRING", stack["PREFECT_AUTH"])
    with temporary_settings(updates={PREFECT_API_AUTH_STRING: stack["PREFECT_AUTH"]}):
        yield stack


@pytest.fixture
def stack_env(stack, monkeypatch):
    """Run a test against the session's file:// stack: same VTP_HOME, ports and storage as its workers."""
    yield from _use(stack, monkeypatch)


@pytest.fixture
def any_stack(backend_stack, monkeypatch):
    """``stack_env`` on each storage backend: the test runs once on the S3 stack and once on the
    file:// one (ids ``s3`` and ``file``; `-k s3` or `-k file` picks one, and only that stack starts)."""
    yield from _use(backend_stack, monkeypatch)


def stored(stack: dict, *paths: str) -> None:
    """Assert each of ``paths`` (relative to the storage root; one ending in "/" means "something
    under it") is stored where ``stack`` keeps its files: files of its storage folder on file://;
    objects of the bucket on S3 — listed with boto3, not through vtp — and then nothing at all in
    the local storage folder ($VTP_HOME/storage is never made: issue 18's isolation)."""
    local = stack["home"] / "storage"
    if stack["backend"] == "file":
        found = {p.relative_to(local).as_posix() for p in local.rglob("*") if p.is_file()}
    else:
        import boto3

        bucket, prefix = STACK_S3_URL.removeprefix("s3://").split("/", 1)
        pages = boto3.client("s3", endpoint_url=stack["VTP_S3_ENDPOINT_URL"]).get_paginator("list_objects_v2")
        found = {o["Key"].removeprefix(f"{prefix}/") for page in pages.paginate(Bucket=bucket, Prefix=f"{prefix}/")
                 for o in page.get("Contents", [])}
        assert not local.exists(), f"the S3 stack wrote into its local storage folder: {sorted(local.rglob('*'))[:20]}"
    missing = [p for p in paths if not (any(f.startswith(p) for f in found) if p.endswith("/") else p in found)]
    assert not missing, f"not in {stack['VTP_STORAGE_URL']}: {missing}"
