"""Trainer callbacks under load: N simulated trainers post one epoch's metrics per second to a real
`vtp api` (uvicorn) on PostgreSQL, for a fixed time, each with its own run token.

    uv run python bench/callbacks.py                       # 200 trainers for 30 s
    uv run python bench/callbacks.py --trainers 50 --seconds 10

Prints latency percentiles, errors, and points stored vs sent (read back from the database).
Target: 200 trainers, p99 < 50 ms, 0 errors, 0 points lost. Last line, machine-readable:
trainers=… p50_ms=… p99_ms=… errors=… lost=…
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
METRICS = ("train/box_loss", "train/cls_loss", "metrics/precision(B)", "metrics/recall(B)", "metrics/mAP50-95(B)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Connection:
    """One keep-alive HTTP/1.1 connection, as a trainer holds it. Deliberately minimal: on a 2-core
    machine the load generator shares the CPU with the API and PostgreSQL, and a full client
    (httpx) took most of a core by itself; real trainers post from other machines."""

    def __init__(self, host: str, port: int):
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, path: str, token: str, payload: bytes) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        self.writer.write(
            f"POST {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\nAuthorization: Bearer {token}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n".encode() + payload)
        await self.writer.drain()
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                       if line.lower().startswith(b"content-length:")), 0)
        return status, await self.reader.readexactly(length)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


async def trainer(host: str, port: int, run_id: str, token: str, deadline: float,
                  latencies: list[float], errors: list[str]) -> int:
    sent = 0
    conn = Connection(host, port)
    await asyncio.sleep(random.random())  # trainers do not start in lockstep
    epoch = 0
    while time.monotonic() < deadline:
        epoch += 1
        tick = time.monotonic()
        body = json.dumps({"epoch": epoch, "epochs": 10_000, "metrics": {m: random.random() for m in METRICS}})
        try:
            status, text = await asyncio.wait_for(
                conn.post(f"/api/internal/runs/{run_id}/metrics", token, body.encode()), timeout=10)
            latencies.append(time.monotonic() - tick)
            if status == 200:
                sent += len(METRICS)
            else:
                errors.append(f"HTTP {status}: {text[:100]!r}")
        except (OSError, asyncio.IncompleteReadError, TimeoutError) as e:
            errors.append(f"{type(e).__name__}: {e}")
            conn.close()
            conn = Connection(host, port)
        await asyncio.sleep(max(0.0, 1.0 - (time.monotonic() - tick)))
    conn.close()
    return sent


async def load(port: int, runs: list[tuple[str, str]], seconds: float) -> tuple[list[float], list[str], int]:
    latencies: list[float] = []
    errors: list[str] = []
    deadline = time.monotonic() + seconds
    sent = await asyncio.gather(*(trainer("127.0.0.1", port, rid, tok, deadline, latencies, errors)
                                  for rid, tok in runs))
    return latencies, errors, sum(sent)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--trainers", type=int, default=200)
    p.add_argument("--seconds", type=float, default=30)
    p.add_argument("--api-workers", type=int, default=2, help="uvicorn processes (VTP_API_WORKERS)")
    p.add_argument("--postgres", default=os.environ.get("VTP_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"))
    opts = p.parse_args()

    import psycopg
    from sqlalchemy import func, select
    from sqlalchemy.engine import make_url

    home = Path(tempfile.mkdtemp(prefix="vtp-cb-bench-"))
    db_name = f"vtp_bench_{secrets.token_hex(4)}"
    admin = psycopg.connect(opts.postgres, autocommit=True, connect_timeout=5)
    admin.execute(f'CREATE DATABASE "{db_name}"')
    db_url = make_url(opts.postgres).set(drivername="postgresql+psycopg", database=db_name).render_as_string(False)
    port = free_port()
    env = {**os.environ, "VTP_HOME": str(home), "VTP_DATABASE_URL": db_url, "VTP_API_PORT": str(port),
           "VTP_PREFECT_PORT": str(free_port()), "VTP_API_WORKERS": str(opts.api_workers),
           "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1"}
    os.environ.update({k: env[k] for k in ("VTP_HOME", "VTP_DATABASE_URL", "VTP_API_PORT")})
    server = subprocess.Popen([sys.executable, "-m", "cli.main", "api"], env=env, cwd=ROOT,
                              stdout=open(home / "api.log", "wb"), stderr=subprocess.STDOUT)  # noqa: SIM115
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                if httpx.get(f"{base}/api/health", timeout=1).status_code in (200, 503):
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        from api import crud
        from api.db import make_engine, session_factory
        from api.models import MetricPoint
        from api.security import mint_run_token
        from core.settings import get_settings

        settings = get_settings()
        engine = make_engine(db_url)
        sessions = session_factory(engine)
        with sessions() as session:
            runs = [crud.create_run(session, spec={"model": "yolo11n", "dataset": "bench"}) for _ in range(opts.trainers)]
            runs = [(r.id, mint_run_token(r.id, settings, ttl_s=3600)) for r in runs]
        print(f"{opts.trainers} trainers posting {len(METRICS)} metrics at 1 Hz for {opts.seconds:.0f}s "
              f"to {base} ({opts.api_workers} uvicorn process(es), PostgreSQL {db_name}) ...", flush=True)
        latencies, errors, sent = asyncio.run(load(port, runs, opts.seconds))
        with sessions() as session:
            stored = session.scalar(select(func.count()).select_from(MetricPoint))
        engine.dispose()
    finally:
        server.terminate()
        server.wait(10)
        admin.execute(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)')
        admin.close()

    ms = sorted(x * 1000 for x in latencies)
    p50 = statistics.median(ms)
    p99 = ms[min(len(ms) - 1, int(len(ms) * 0.99))]
    rate = len(ms) / opts.seconds
    print(f"requests={len(ms)} ({rate:.0f}/s) p50={p50:.1f} ms p90={ms[int(len(ms) * 0.9)]:.1f} ms "
          f"p99={p99:.1f} ms max={ms[-1]:.1f} ms errors={len(errors)} points sent={sent} stored={stored}")
    for e in sorted(set(errors))[:5]:
        print(f"  error: {e}")
    print(f"trainers={opts.trainers} p50_ms={p50:.1f} p99_ms={p99:.1f} errors={len(errors)} lost={sent - stored}")


if __name__ == "__main__":
    main()
