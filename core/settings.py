"""One settings object for all of vtp (env prefix ``VTP_``, ``.env`` supported).

Every default is embedded: state lives under ``VTP_HOME`` (default ``~/.vtp``), so two homes never
interfere and nothing needs configuring to start.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any

from pydantic import Field, PrivateAttr, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

TARGETS = ("process", "kind", "k8s")
SECRET_KEY_FILE = "secret_key"
PREFECT_AUTH_FILE = "prefect_auth"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="VTP_", env_file=".env", extra="ignore")

    home: Path = Field(default=Path("~/.vtp"), description="Folder holding all embedded state.")
    storage_url: str = Field(
        default="", description="fsspec URL of the storage root: file:///path or s3://bucket/prefix."
    )
    s3_endpoint_url: str | None = Field(
        default=None, description="S3-compatible endpoint (MinIO, moto); falls back to AWS_ENDPOINT_URL."
    )
    prefect_host: str = Field(
        default="127.0.0.1",
        description="Interface the Prefect server `vtp up` starts listens on. Loopback by default; a wider one (the "
        "Kind network's gateway 172.18.0.1, or 0.0.0.0) is an explicit choice, for workers or pods on other hosts: "
        "the server still requires its auth string (VTP_PREFECT_AUTH_STRING).",
    )
    prefect_port: int = 4200
    prefect_api_url: str = Field(
        default="", description="The Prefect API every client and worker is told to use; defaults to "
        "http://<advertise_host>:<prefect_port>/api (the server `vtp up` starts).")
    advertise_host: str = Field(
        default="",
        description="Host name or address that workers and job pods are told to reach the Prefect server and the "
        "API at: the host of the default VTP_PREFECT_API_URL and VTP_API_URL. For Kind, the docker network's "
        "gateway (172.18.0.1); empty = the listening interface (127.0.0.1 when that is 0.0.0.0 or ::).",
    )
    target: str = Field(default="process", description="Work-pool target: process | kind | k8s.")
    worker_poll_seconds: float = Field(default=0.5, gt=0, description="How often workers ask for runs.")
    local_workers: str = Field(
        default="all", pattern=r"^(all|none|[A-Za-z0-9_.-]+(,[A-Za-z0-9_.-]+)*)$",
        description="Frameworks whose worker `vtp up` starts on this host: all, none, or a comma list "
        "(ultralytics,timm). The other frameworks' pools wait for a worker started elsewhere with `vtp worker "
        "FRAMEWORK` (a trainer host: it reaches Prefect, the API and the storage only over the network).")
    weights_dir: Path | None = Field(default=None, description="Local folder of pretrained weights.")
    download_timeout_s: float = Field(default=10.0, gt=0, description="Cap on any weight download.")
    database_url: str = Field(
        default="", description="SQLAlchemy URL of the API database; defaults to SQLite at $VTP_HOME/vtp.db."
    )
    api_host: str = Field(
        default="127.0.0.1",
        description="Interface `vtp api` listens on. Loopback by default; a wider one (the Kind network's gateway, "
        "or 0.0.0.0) is an explicit choice: the API still requires a token (an API token, or a run's token for "
        "callbacks) on every route but /api/health, /metrics and /docs.",
    )
    api_port: int = Field(default=8000, ge=1, le=65535)
    api_workers: int = Field(default=1, ge=1, le=64, description="API processes; more than one needs redis_url "
                             "for live WebSocket events across them.")
    api_url: str = Field(default="", description="URL trainers call back; defaults to "
                         "http://<advertise_host>:<api_port>.")
    secret_key: SecretStr | None = Field(
        default=None, description="Signs run tokens; generated once into $VTP_HOME/secret_key when not set."
    )
    prefect_auth_string: SecretStr | None = Field(
        default=None,
        description="Basic-auth string of the Prefect server (Prefect's PREFECT_SERVER_API_AUTH_STRING), sent by "
                    "every vtp client as PREFECT_API_AUTH_STRING. `vtp up` generates one into "
                    "$VTP_HOME/prefect_auth when not set; empty = send none (a Prefect server of your own "
                    "that authenticates otherwise).",
    )
    max_upload_bytes: int = Field(default=2 * 1024**3, gt=0, description="Largest dataset upload the API accepts.")
    redis_url: str | None = Field(default=None, description="Redis for live run events; none by default.")
    run_token_ttl_s: int = Field(default=900, gt=0, description="Life of a renewed run token (callbacks).")
    run_token_submit_ttl_s: int = Field(
        default=24 * 3600, gt=0,
        description="Life of the run token passed with the flow run: it must outlast the time in the queue.",
    )
    checkpoint_every: int = Field(
        default=1, ge=0,
        description="Upload the resumable checkpoint every K epochs, so a crashed run resumes from there; 0 = never.",
    )
    crash_retries: int = Field(
        default=2, ge=0, le=20,
        description="How often a crashed training run (killed process, lost worker, stale heartbeat) is retried.",
    )
    crash_retry_delay_s: float = Field(
        default=10.0, ge=0, le=3600,
        description="Backoff before a crashed run's first retry; doubled for each further retry (with jitter).",
    )
    stale_after_s: float = Field(
        default=120.0, gt=0,
        description="The API marks a running run stale after this long without a trainer heartbeat, and crashes "
        "its flow run so it is retried.",
    )
    prefect_database_url: str | None = Field(
        default=None,
        description="Database of the Prefect server `vtp up` starts: empty = SQLite in $VTP_HOME/prefect (zero "
        "configuration); postgresql://user@host/db for many concurrent runs or a busy machine. Use a database of "
        "its own, not VTP_DATABASE_URL's: Prefect and vtp each keep their own migration history.",
    )
    start_timeout_s: float = Field(
        default=300.0, gt=0,
        description="How long `vtp up` waits for each service (Prefect server, API) to answer before giving up; "
        "a busy machine starts them slowly, and a service that exits is reported at once.",
    )
    heartbeat_every_s: float = Field(
        default=5.0, gt=0, le=60,
        description="How often a run's process tells the API it is alive, from its own thread (independent of "
        "the training loop's pace); keep it well under VTP_STALE_AFTER_S.",
    )
    hung_after_s: float = Field(
        default=1800.0, ge=0,
        description="A trainer that is alive but makes no progress (no batch, epoch or log line) this long is "
        "killed, its process included, and the run is retried from its last checkpoint; 0 = never.",
    )
    run_timeout: float | None = Field(
        default=None,
        description="Default wall-clock limit of a run's training when its spec sets no max_time: minutes (90) "
        "or e.g. '12h'. At the limit the trainer stops after the current batch, validates, and publishes what "
        "it has. Unset = no limit.",
    )
    pool_slots: int = Field(
        default=0, ge=0,
        description="Training runs at once per work pool (a Prefect global concurrency limit, e.g. GPU slots); "
        "0 = no limit.",
    )
    cache_max_gb: float = Field(
        default=20.0, ge=0,
        description="Cap on the local dataset cache ($VTP_HOME/cache blobs and dataset versions) in GB (10^9 bytes) "
        "on disk; after each download the least recently used versions not in use by a running process are "
        "evicted until it fits. 0 = no cap.",
    )
    trackers: str = Field(default="", description="Experiment trackers for every run: clearml, mlflow or both "
                          "(comma-separated); each reads its own settings (MLFLOW_TRACKING_URI, CLEARML_*).")
    data_roots: str = Field(
        default="",
        description="Folders (comma-separated) under which file:// dataset URIs may be registered and read, besides "
        "the storage folder; empty = only the storage folder. Any other file:// URI is refused.",
    )
    _secret: str | None = PrivateAttr(default=None)

    @field_validator("run_timeout", mode="before")
    @classmethod
    def _run_timeout(cls, v: Any) -> float | None:
        from core.durations import parse_minutes

        return parse_minutes(v, "VTP_RUN_TIMEOUT")

    @field_validator("database_url")
    @classmethod
    def _normalise_dsn(cls, v: str) -> str:
        """postgres:// and postgresql:// (what providers hand out) -> the psycopg 3 driver."""
        for prefix in ("postgres://", "postgresql://"):
            if v.startswith(prefix):
                return "postgresql+psycopg://" + v.removeprefix(prefix)
        return v

    @model_validator(mode="after")
    def _derive(self) -> Settings:
        self.home = self.home.expanduser().resolve()
        if not self.storage_url:
            self.storage_url = (self.home / "storage").as_uri()
        self.storage_url = self.storage_url.rstrip("/")
        if not self.prefect_api_url:
            self.prefect_api_url = f"http://{self.advertised(self.prefect_host)}:{self.prefect_port}/api"
        if self.target not in TARGETS:
            raise ValueError(f"VTP_TARGET={self.target!r} is not a target; use one of {', '.join(TARGETS)}")
        if self.weights_dir is None:
            self.weights_dir = self.home / "weights"
        self.weights_dir = self.weights_dir.expanduser()
        if not self.database_url:
            self.database_url = f"sqlite:///{self.home / 'vtp.db'}"
        if not self.api_url:
            self.api_url = f"http://{self.advertised(self.api_host)}:{self.api_port}"
        self.api_url = self.api_url.rstrip("/")
        return self

    def advertised(self, bind_host: str) -> str:
        """The host part of a URL others are given for a service listening on ``bind_host``:
        VTP_ADVERTISE_HOST, else ``bind_host`` (loopback for a wildcard), IPv6 in brackets."""
        host = self.advertise_host or ("127.0.0.1" if bind_host in ("0.0.0.0", "::", "") else bind_host)
        return f"[{host}]" if ":" in host and not host.startswith("[") else host

    def signing_key(self) -> str:
        """The secret that signs run tokens: VTP_SECRET_KEY, else one generated once per VTP_HOME.

        Read lazily, so commands that never sign anything do not touch the file.
        """
        if self.secret_key is not None:
            return self.secret_key.get_secret_value()
        if self._secret is None:
            self._secret = _load_or_create_secret(self.home / SECRET_KEY_FILE)
        return self._secret

    def prefect_auth(self, *, create: bool = False) -> str | None:
        """The Prefect server's auth string: VTP_PREFECT_AUTH_STRING, else the one in
        $VTP_HOME/prefect_auth (made there, mode 0600, when ``create``: what `vtp up` does before it
        starts its server). None when neither is set: the client sends no credentials."""
        if self.prefect_auth_string is not None:
            return self.prefect_auth_string.get_secret_value() or None
        path = self.home / PREFECT_AUTH_FILE
        if create:
            return _load_or_create_secret(path)
        try:
            return path.read_text().strip() or None
        except OSError:
            return None

    @property
    def prefect_home(self) -> Path:
        return self.home / "prefect"

    @property
    def work_root(self) -> Path:
        return self.home / "work"

    @property
    def cache_root(self) -> Path:
        return self.home / "cache"

    def pool_name(self, framework: str) -> str:
        return f"{framework}-{self.target}"

    def runs_worker_here(self, framework: str) -> bool:
        """Whether `vtp up` starts ``framework``'s worker on this host (:attr:`local_workers`)."""
        if self.local_workers == "all":
            return True
        return framework in self.local_workers.split(",")


def _load_or_create_secret(path: Path) -> str:
    """Read ``path``, or write a fresh random key there (mode 0600). Two processes racing get the
    same key: the file is linked into place only if absent."""
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(secrets.token_urlsafe(48))
    try:
        os.link(tmp, path)
    except FileExistsError:
        pass  # another process won the race: its key is the one
    finally:
        tmp.unlink()
    return path.read_text().strip()


def saved_api_token(settings: Settings | None = None) -> str | None:
    """A person's API token for this machine: ``VTP_API_TOKEN``, else the one `vtp up` saved to
    ``$VTP_HOME/api_token`` (mode 0600); None when there is neither."""
    token = os.environ.get("VTP_API_TOKEN", "").strip()
    if token:
        return token
    path = (settings or get_settings()).home / "api_token"
    try:
        return path.read_text().strip() or None
    except OSError:
        return None


def ui_temp_dir(settings: Settings | None = None) -> Path:
    """Gradio's temporary folder (GRADIO_TEMP_DIR) for the web app: $VTP_HOME/ui-tmp, made mode
    0700. Gradio's default, /tmp/gradio, is readable by every local user and held copies of
    checkpoints (issue 13). Gradio reads the variable when it is imported."""
    path = (settings or get_settings()).home / "ui-tmp"
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(0o700)
    return path


def get_settings() -> Settings:
    """Fresh settings from the current environment (cheap; tests change the env between calls)."""
    return Settings()


def prefect_env(settings: Settings | None = None) -> dict[str, str]:
    """Environment for every Prefect client, server and worker vtp starts.

    vtp's own settings (VTP_PREFECT_API_URL, VTP_HOME, VTP_WORKER_POLL_SECONDS) are the one source
    of truth, so a stray PREFECT_API_URL never sends vtp's runs to another server.
    """
    s = settings or get_settings()
    env = {
        "PREFECT_HOME": str(s.prefect_home),
        "PREFECT_API_URL": s.prefect_api_url,
        "PREFECT_WORKER_QUERY_SECONDS": str(s.worker_poll_seconds),
        "PREFECT_WORKER_PREFETCH_SECONDS": "10",
        "PREFECT_UI_API_URL": s.prefect_api_url,
    }
    auth = s.prefect_auth()
    if auth:  # the server requires it (a vtp-started one), every client sends it
        env["PREFECT_SERVER_API_AUTH_STRING"] = auth
        env["PREFECT_API_AUTH_STRING"] = auth
    # The Prefect UI is served by the server itself; no other web origin may call the API.
    env["PREFECT_SERVER_CORS_ALLOWED_ORIGINS"] = ",".join(prefect_origins(s.prefect_api_url))
    if s.prefect_database_url:
        env["PREFECT_SERVER_DATABASE_CONNECTION_URL"] = prefect_database_dsn(s.prefect_database_url)
    env.update({"PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1"})
    return env


def prefect_origins(api_url: str) -> list[str]:
    """The web origins of the Prefect UI for the server at ``api_url``: its own, and the other
    loopback spelling (a browser on http://localhost:4200 calls the API at http://127.0.0.1:4200)."""
    from urllib.parse import urlsplit

    parts = urlsplit(api_url)
    port = f":{parts.port}" if parts.port else ""
    origins = [f"{parts.scheme}://{parts.hostname}{port}"]
    if parts.hostname in ("127.0.0.1", "localhost"):
        other = "localhost" if parts.hostname == "127.0.0.1" else "127.0.0.1"
        origins.append(f"{parts.scheme}://{other}{port}")
    return origins


def prefect_database_dsn(url: str) -> str:
    """VTP_PREFECT_DATABASE_URL -> the SQLAlchemy URL Prefect's server takes (asyncpg for PostgreSQL)."""
    for prefix in ("postgresql+psycopg://", "postgresql+psycopg2://", "postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url[len(prefix):]
    return url


def apply_prefect_env(settings: Settings | None = None) -> dict[str, str]:
    """Put :func:`prefect_env` into ``os.environ``; call before importing prefect."""
    env = prefect_env(settings)
    os.environ.update(env)
    return env
