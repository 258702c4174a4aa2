"""One settings object for all of vtp (env prefix ``VTP_``, ``.env`` supported).

Every default is embedded: state lives under ``VTP_HOME`` (default ``~/.vtp``), so two homes never
interfere and nothing needs configuring to start.
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

TARGETS = ("process", "kind", "k8s")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="VTP_", env_file=".env", extra="ignore")

    home: Path = Field(default=Path("~/.vtp"), description="Folder holding all embedded state.")
    storage_url: str = Field(
        default="", description="fsspec URL of the storage root: file:///path or s3://bucket/prefix."
    )
    s3_endpoint_url: str | None = Field(
        default=None, description="S3-compatible endpoint (MinIO, moto); falls back to AWS_ENDPOINT_URL."
    )
    prefect_port: int = 4200
    prefect_api_url: str = Field(default="", description="Defaults to the local server on prefect_port.")
    target: str = Field(default="process", description="Work-pool target: process | kind | k8s.")
    worker_poll_seconds: float = Field(default=0.5, gt=0, description="How often workers ask for runs.")
    weights_dir: Path | None = Field(default=None, description="Local folder of pretrained weights.")
    download_timeout_s: float = Field(default=10.0, gt=0, description="Cap on any weight download.")

    @model_validator(mode="after")
    def _derive(self) -> Settings:
        self.home = self.home.expanduser().resolve()
        if not self.storage_url:
            self.storage_url = (self.home / "storage").as_uri()
        self.storage_url = self.storage_url.rstrip("/")
        if not self.prefect_api_url:
            self.prefect_api_url = f"http://127.0.0.1:{self.prefect_port}/api"
        if self.target not in TARGETS:
            raise ValueError(f"VTP_TARGET={self.target!r} is not a target; use one of {', '.join(TARGETS)}")
        if self.weights_dir is None:
            self.weights_dir = self.home / "weights"
        self.weights_dir = self.weights_dir.expanduser()
        return self

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
    env.update({"PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1"})
    return env


def apply_prefect_env(settings: Settings | None = None) -> dict[str, str]:
    """Put :func:`prefect_env` into ``os.environ``; call before importing prefect."""
    env = prefect_env(settings)
    os.environ.update(env)
    return env
