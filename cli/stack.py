"""`vtp up`: the Prefect server, the work pools, the deployments and one worker per pool,
all on embedded defaults under VTP_HOME. Ctrl-C stops every process it started."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from cli.prefect_setup import HEARTBEAT_S
from core.errors import VtpError
from core.frameworks import frameworks
from core.prefect_api import server_healthy
from core.processes import die_with_parent
from core.settings import Settings, prefect_env, ui_temp_dir

PROJECT_DIR = Path(__file__).resolve().parent.parent


def _answers(url: str) -> int | None:
    """The HTTP status at ``url``, or None when nothing listens there."""
    try:
        return httpx.get(url, timeout=5.0).status_code
    except httpx.HTTPError:
        return None


def stack_env(settings: Settings) -> dict[str, str]:
    """The environment of every process `vtp up` starts: vtp settings pinned, telemetry off."""
    env = dict(os.environ)
    env.update(prefect_env(settings))
    env.update({
        "VTP_HOME": str(settings.home),
        "VTP_STORAGE_URL": settings.storage_url,
        "VTP_TARGET": settings.target,
        "VTP_DATABASE_URL": settings.database_url,
        "VTP_API_HOST": settings.api_host,
        "VTP_API_PORT": str(settings.api_port),
        "VTP_API_URL": settings.api_url,
        "VTP_S3_ENDPOINT_URL": settings.s3_endpoint_url or "",
        "VTP_PROJECT_DIR": str(PROJECT_DIR),
        "PREFECT_CLI_PROMPT": "false",
        "PREFECT_UI_ENABLED": env.get("PREFECT_UI_ENABLED", "true"),
        "YOLO_OFFLINE": "1",
        "PYTHONUNBUFFERED": "1",
        "GRADIO_ANALYTICS_ENABLED": "False",
        "GRADIO_TEMP_DIR": str(ui_temp_dir(settings)),  # uploads and served files: the user's, mode 0700
        "PREFECT_FLOWS_HEARTBEAT_FREQUENCY": str(HEARTBEAT_S),  # feeds the zombie-run automation
        "PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS": "5",  # a new schedule's runs appear within seconds
    })
    return env


def worker_command(settings: Settings, framework: str, name: str | None = None) -> list[str]:
    """The process worker for ``framework``'s pool: Prefect's CLI, reporting each crash once
    (cli/prefect_worker.py: no second retry for one kill)."""
    pool = settings.pool_name(framework)
    return [sys.executable, "-m", "cli.prefect_worker", "worker", "start", "--pool", pool, "--type", "process",
            "--name", name or f"vtp-{pool}"]


def check_advertised(settings: Settings) -> None:
    """Refuse an advertised address the services `vtp up` starts would not answer at: with
    VTP_ADVERTISE_HOST set to an address other hosts use, neither the Prefect server nor the API may
    listen on loopback only (workers and pods would call an address nothing answers at)."""
    advertised = settings.advertise_host.strip("[]")
    if not advertised or _is_loopback(advertised):
        return
    for setting, bind in (("VTP_PREFECT_HOST", settings.prefect_host), ("VTP_API_HOST", settings.api_host)):
        if _is_loopback(bind):
            raise RuntimeError(f"VTP_ADVERTISE_HOST={advertised} but {setting}={bind}: workers and pods would call "
                               f"an address nothing listens on. Set {setting}={advertised} (or 0.0.0.0, every "
                               "interface), or leave VTP_ADVERTISE_HOST unset")


def _is_loopback(host: str) -> bool:
    import ipaddress

    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


@dataclass
class Stack:
    settings: Settings
    procs: list[tuple[str, subprocess.Popen]] = field(default_factory=list)
    log_dir: Path = field(init=False)

    _stopping: threading.Event = field(default_factory=threading.Event, init=False)
    _supervisor: threading.Thread | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self.log_dir = self.settings.home / "logs"
        self.log_dir.mkdir(parents=True, exist_ok=True)
        # The Prefect server vtp starts requires this string; every process below sends it.
        self.settings.prefect_auth(create=True)
        self.env = stack_env(self.settings)

    @property
    def pid_file(self) -> Path:
        return self.settings.home / "up.pid"

    def running_pid(self) -> int | None:
        try:
            pid = int(self.pid_file.read_text().strip())
            os.kill(pid, 0)
            return pid
        except (OSError, ValueError):
            return None

    def _spawn(self, name: str, args: list[str]) -> subprocess.Popen:
        log = open(self.log_dir / f"{name}.log", "ab")  # noqa: SIM115 - the child owns it from here
        proc = subprocess.Popen(args, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                cwd=PROJECT_DIR, start_new_session=True, preexec_fn=die_with_parent)
        self.procs.append((name, proc))
        return proc

    def start_server(self, timeout: float | None = None) -> None:
        timeout = timeout or self.settings.start_timeout_s
        api = self.settings.prefect_api_url
        if server_healthy(api):
            raise RuntimeError(
                f"a Prefect server already answers at {api} (another `vtp up` or VTP_HOME?): stop it, "
                "or give this one another port with VTP_PREFECT_PORT=4300"
            )
        self.settings.prefect_home.mkdir(parents=True, exist_ok=True)
        # Prefect's CLI with SQLite transactions begun IMMEDIATE (cli/prefect_server.py: no
        # "database is locked" on a busy machine)
        proc = self._spawn("prefect-server", [sys.executable, "-m", "cli.prefect_server", "server", "start",
                                              "--host", self.settings.prefect_host,
                                              "--port", str(self.settings.prefect_port)])
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"the Prefect server exited (code {proc.returncode}); see {self.log_dir}/prefect-server.log")
            if server_healthy(api):
                return
            time.sleep(0.3)
        raise RuntimeError(f"the Prefect server did not answer within {timeout:.0f}s; see {self.log_dir}/prefect-server.log")

    def create_pools(self) -> list[str]:
        from cli.prefect_setup import ensure_process_pools

        return ensure_process_pools(self.settings)

    def deploy(self) -> None:
        # By name: prefect.yaml may list a framework whose trainer is not registered here (no pool).
        from cli.pools import deployments_for

        names = [arg for name in deployments_for(frameworks()) for arg in ("--name", name)]
        out = subprocess.run([sys.executable, "-m", "prefect", "--no-prompt", "deploy", *names],
                             env=self.env, cwd=PROJECT_DIR, capture_output=True, text=True, timeout=300)
        (self.log_dir / "deploy.log").write_text(out.stdout + out.stderr)
        if out.returncode != 0:
            raise RuntimeError(f"`prefect deploy` failed; see {self.log_dir}/deploy.log:\n{out.stdout[-2000:]}{out.stderr[-2000:]}")

    @property
    def zygote_socket(self) -> Path:
        return self.settings.home / "run" / "zygote.sock"

    def start_zygote(self) -> None:
        """The warm process runs are forked from (see cli.zygote); it loads in the background."""
        self.zygote_socket.unlink(missing_ok=True)
        self.env["VTP_ZYGOTE_SOCKET"] = str(self.zygote_socket)
        self._spawn("zygote", [sys.executable, "-m", "cli.zygote", "--socket", str(self.zygote_socket)])

    def wait_zygote(self, timeout: float = 120) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not self.zygote_socket.exists():
            time.sleep(0.2)
        return self.zygote_socket.exists()

    def ensure_samples(self) -> list[str]:
        """On a first start, register the small generated datasets so the walkthrough just works."""
        from tasks.dataset_ingest import ingest_sample
        from tasks.dataset_store import list_datasets
        from tasks.storage import Storage

        storage = Storage(settings=self.settings)
        if list_datasets(storage):
            return []
        return [ingest_sample(name, storage=storage).name for name in ("shapes-detect", "shapes-classify")]

    def start_workers(self) -> list[str]:
        """Start the local workers (VTP_LOCAL_WORKERS); returns the frameworks left to another host."""
        elsewhere = []
        for fw in frameworks():
            if self.settings.runs_worker_here(fw):
                self.start_worker(fw)
            else:
                elsewhere.append(fw)
        return elsewhere

    def start_worker(self, fw: str) -> subprocess.Popen:
        return self._spawn(f"worker-{fw}", worker_command(self.settings, fw))

    def prefect_auth_hint(self) -> str:
        if self.settings.prefect_auth_string is not None:
            return "VTP_PREFECT_AUTH_STRING"
        from core.settings import PREFECT_AUTH_FILE

        return str(self.settings.home / PREFECT_AUTH_FILE)

    @property
    def api_token_file(self) -> Path:
        return self.settings.home / "api_token"

    def ensure_api_token(self) -> str | None:
        """On the first start, create the API token "local" and save it (mode 0600) for the UI and
        CLI; returns it so it can be printed once. Later starts return None. A saved token the
        database does not know (a new database) is replaced; a revoked one is left revoked."""
        from sqlalchemy import select
        from sqlalchemy.exc import SQLAlchemyError

        from api.db import migrate, session_scope, unusable
        from api.models import ApiToken
        from api.security import hash_token
        from api.tokens import create_token

        try:
            migrate(self.settings.database_url)
            with session_scope(self.settings) as session:
                if self.api_token_file.exists():
                    saved = self.api_token_file.read_text().strip()
                    if session.scalar(select(ApiToken.id).where(ApiToken.token_hash == hash_token(saved))) is not None:
                        return None
                token = create_token(session, name="local").token
        except SQLAlchemyError as e:
            raise RuntimeError(unusable(self.settings.database_url, e)) from e
        tmp = self.api_token_file.with_name(f".api_token.{os.getpid()}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(token + "\n")
        os.replace(tmp, self.api_token_file)
        return token

    def _start_answering(self, name: str, what: str, url: str, ok: tuple[int, ...], port_hint: str,
                         timeout: float | None) -> None:
        """Spawn `vtp <name>` and wait until ``url`` answers with a status in ``ok``; refuse when
        something answers there already, fail when the process exits or the time runs out."""
        timeout = timeout or self.settings.start_timeout_s
        if _answers(url) is not None:
            raise RuntimeError(f"something already answers at {url}: stop it, or give {what} another port with "
                               f"{port_hint}")
        proc = self._spawn(name, [sys.executable, "-m", "cli.main", name])
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"{what} exited (code {proc.returncode}); see {self.log_dir}/{name}.log")
            if _answers(url) in ok:
                return
            time.sleep(0.3)
        raise RuntimeError(f"{what} did not answer within {timeout:.0f}s; see {self.log_dir}/{name}.log")

    def start_api(self, timeout: float | None = None) -> None:
        """`vtp api` as a child process, with the stack's environment; waits until it answers."""
        self._start_answering("api", "vtp's API", f"{self.settings.api_url}/api/health", (200,),
                              "VTP_API_PORT=8100", timeout)

    def start_ui(self, timeout: float | None = None) -> str:
        """`vtp ui` as a child process (it talks to the API over HTTP); waits until its page
        answers, so "ready" is only printed once the web app can be opened. Returns its URL."""
        from ui.settings import UiSettings

        ui = UiSettings()
        host = "127.0.0.1" if ui.ui_host in ("0.0.0.0", "::", "") else ui.ui_host
        url = f"http://{host}:{ui.ui_port}"
        # 401: the login page of VTP_UI_USERNAME/PASSWORD is up
        self._start_answering("ui", "the web app", url, (200, 401), "VTP_UI_PORT=7870", timeout)
        return url

    def stop(self, echo=None) -> None:
        """SIGTERM to every process started, all at once; SIGKILL to what still runs after 15 s.
        With ``echo``, says what it is waiting for every 3 s (a run's flow process may take a few
        seconds to hand its state back to Prefect)."""
        self._stopping.set()
        if self._supervisor is not None:
            self._supervisor.join(timeout=5)
        for _, proc in reversed(self.procs):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        started = time.monotonic()
        deadline = started + 15
        said = started
        while time.monotonic() < deadline:
            running = [name for name, proc in self.procs if proc.poll() is None]
            if not running:
                break
            if echo is not None and time.monotonic() - said >= 3:
                echo(f"  waiting for {', '.join(running)} to stop "
                     f"({time.monotonic() - started:.0f}s; killed at 15s)")
                said = time.monotonic()
            time.sleep(0.1)
        for name, proc in self.procs:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(5)
                if echo is not None:
                    echo(f"  {name} did not stop within 15s: killed")
        if echo is not None:
            echo(f"stopped ({time.monotonic() - started:.1f}s)")
        self.procs.clear()
        if self.running_pid() == os.getpid():
            self.pid_file.unlink(missing_ok=True)

    def up(self, echo=print) -> None:
        """Start everything and return; the caller waits and calls :meth:`stop`."""
        other = self.running_pid()
        if other is not None and other != os.getpid():
            raise RuntimeError(f"vtp up is already running (pid {other}) for VTP_HOME={self.settings.home}; "
                               f"use that one, or stop it with Ctrl-C (or `kill {other}`)")
        check_advertised(self.settings)
        from tasks.storage import ensure_root

        try:
            prepared = ensure_root(self.settings)  # a storage that cannot be used stops here, said plainly
        except VtpError as e:
            raise RuntimeError(str(e)) from None
        self.pid_file.write_text(str(os.getpid()))
        echo(f"vtp home: {self.settings.home}\nstorage:  {self.settings.storage_url} ({prepared})")
        echo("starting the Prefect server ...")
        self.start_zygote()
        self.start_server()
        pools = self.create_pools()
        from cli.prefect_setup import (
            ensure_crash_retry_automation,
            ensure_pool_slots,
            ensure_zombie_automation,
        )

        ensure_zombie_automation(self.settings)
        ensure_crash_retry_automation(self.settings)
        ensure_pool_slots(self.settings)
        slots = f" ({self.settings.pool_slots} training slots each)" if self.settings.pool_slots else ""
        echo(f"work pools: {', '.join(pools)}{slots}")
        self.deploy()
        samples = self.ensure_samples()
        if samples:
            echo(f"sample datasets registered: {', '.join(samples)}")
        echo("deployments: " + ", ".join(f"train/train-{fw}" for fw in frameworks()))
        elsewhere = self.start_workers()
        for fw in elsewhere:
            echo(f"no worker here for {self.settings.pool_name(fw)} (VTP_LOCAL_WORKERS={self.settings.local_workers}): "
                 f"its runs wait for `vtp worker {fw}` on a trainer host")
        self._supervisor = threading.Thread(target=self.supervise_workers, name="vtp-workers", daemon=True)
        self._supervisor.start()
        if not self.wait_zygote():
            echo("warm launcher not ready: runs start with a fresh interpreter (slower) until it is")
        ui = self.settings.prefect_api_url.removesuffix("/api")
        echo(f"workers: {', '.join(name for name, _ in self.procs if name.startswith('worker'))}")
        token = self.ensure_api_token()
        self.start_api()
        web = self.start_ui()
        api = self.settings.api_url
        echo(f"\nPrefect UI: {ui}  (it asks for the auth string in {self.prefect_auth_hint()})"
             f"\nPrefect API: {self.settings.prefect_api_url}\nlogs: {self.log_dir}")
        echo(f"\nvtp web app: {web}  (chat, runs, datasets, models)")
        echo(f"vtp API: {api}\nAPI docs: {api}/docs")
        if token:
            echo(f"API token: {token}\n  (shown once; saved to {self.api_token_file}, mode 0600. "
                 "`vtp tokens create NAME` makes more)")
        else:
            echo(f"API token: in {self.api_token_file}")
        echo("\nready: in another terminal, `uv run vtp train model=yolo11n dataset=shapes-detect epochs=2 "
             "image_size=128`. Ctrl-C stops everything.")

    def wait(self) -> int:
        """Block until a child other than a worker dies (returns 1) or a signal arrives (returns 0);
        dead workers are started again by :meth:`supervise_workers`."""
        while True:
            for name, proc in list(self.procs):
                if proc.poll() is not None and not name.startswith("worker-"):
                    print(f"vtp up: {name} exited with code {proc.returncode}; see {self.log_dir}/{name}.log",
                          file=sys.stderr)
                    return 1
            time.sleep(0.5)

    def supervise_workers(self) -> None:
        """Start a worker again when it dies (at most 5 times in 5 minutes each): a crashed run is
        retried by Prefect and needs a worker to pick it up."""
        restarts: dict[str, list[float]] = {}
        while not self._stopping.wait(0.5):
            for i, (name, proc) in enumerate(list(self.procs)):
                if not name.startswith("worker-") or proc.poll() is None:
                    continue
                recent = [t for t in restarts.get(name, []) if time.monotonic() - t < 300]
                if len(recent) >= 5:
                    continue
                restarts[name] = [*recent, time.monotonic()]
                print(f"vtp up: {name} exited with code {proc.returncode}; starting it again "
                      f"(see {self.log_dir}/{name}.log)", file=sys.stderr)
                if self._stopping.is_set():
                    return
                new = self.start_worker(name.removeprefix("worker-"))
                self.procs.remove((name, new))
                self.procs[i] = (name, new)
