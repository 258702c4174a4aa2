"""`vtp ui`: serve the web UI (default 127.0.0.1:7860; VTP_UI_HOST / VTP_UI_PORT)."""

from __future__ import annotations

from ui.settings import UiSettings


def serve(host: str | None = None, port: int | None = None) -> None:
    """Blocks until interrupted. The API token comes from VTP_API_TOKEN or $VTP_HOME/api_token;
    VTP_UI_USERNAME with VTP_UI_PASSWORD puts a login in front of the page."""
    from ui.app import from_settings, launch

    settings = UiSettings()
    launch(from_settings(settings), host or settings.ui_host, port or settings.ui_port, auth=settings.auth())


if __name__ == "__main__":
    serve()
