"""`vtp ui`: serve the web UI (default 127.0.0.1:7860; VTP_UI_HOST / VTP_UI_PORT)."""

from __future__ import annotations

from ui.settings import UiSettings


def serve(host: str | None = None, port: int | None = None) -> None:
    """Blocks until interrupted. The API token comes from VTP_API_TOKEN or $VTP_HOME/api_token;
    VTP_UI_USERNAME with VTP_UI_PASSWORD puts a login in front of the page, which is required when
    the app listens on anything but loopback (raises ui.guard.UiRefused otherwise, before binding)."""
    import os

    from core.settings import ui_temp_dir
    from ui.guard import require_login_off_loopback

    settings = UiSettings()
    host = host or settings.ui_host
    require_login_off_loopback(host, settings.auth())
    os.environ["GRADIO_TEMP_DIR"] = str(ui_temp_dir())  # before gradio is imported: it reads it then
    from ui.app import from_settings, launch

    launch(from_settings(settings), host, port or settings.ui_port, auth=settings.auth(),
           allowed_hosts=[h for h in settings.ui_allowed_hosts.split(",") if h.strip()])


if __name__ == "__main__":
    serve()
