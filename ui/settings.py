"""Settings of the UI alone (env prefix ``VTP_``); the API URL, VTP_HOME and the Prefect URL come
from vtp's shared settings."""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from core.settings import Settings


class UiSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="VTP_", env_file=".env", extra="ignore")

    ui_host: str = Field(default="127.0.0.1", description="Interface `vtp ui` listens on.")
    ui_port: int = Field(default=7860, ge=1, le=65535)
    ui_username: str | None = Field(default=None, description="With ui_password: a login for the page itself.")
    ui_password: SecretStr | None = None
    ui_allowed_hosts: str = Field(
        default="", description="Comma-separated host names the web app answers to besides loopback's (a "
                                "reverse proxy's name); bound off loopback with a login and none given: any.")
    api_token: SecretStr | None = Field(default=None, description="Defaults to the token in $VTP_HOME/api_token.")

    def auth(self) -> tuple[str, str] | None:
        if self.ui_username and self.ui_password:
            return (self.ui_username, self.ui_password.get_secret_value())
        return None

    def token(self, core: Settings) -> str:
        if self.api_token is not None:
            return self.api_token.get_secret_value()
        path = core.home / "api_token"
        if path.exists():
            return path.read_text().strip()
        raise RuntimeError(f"no API token: set VTP_API_TOKEN, or start `vtp up` once (it saves one to {path})")
