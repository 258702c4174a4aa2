"""Who may talk to the web app: Host and Origin checks, and a login off loopback (issue 13).

Every event of the web app acts with the API token's full powers, so two kinds of caller must be
kept out:

- a page on another site, through the user's browser. *DNS rebinding* points the attacker's host
  name at 127.0.0.1, so its page reaches the loopback-bound app as "same origin"; the request then
  carries ``Host: attacker.example``, which is not a name of this app (400). A page that calls the
  app from its own origin sends ``Origin: https://attacker.example``: a state-changing request
  (anything but GET/HEAD/OPTIONS) or a WebSocket whose Origin is not the app's own is refused (403).
- anyone on the network: bound to anything but loopback, the app refuses to start without a login
  (VTP_UI_USERNAME and VTP_UI_PASSWORD).

The checks are an ASGI middleware given to Gradio's FastAPI app (``launch(app_kwargs=...)``), so
they run before any Gradio route, uploads and the queue included.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class UiRefused(RuntimeError):
    """The web app will not start with these settings; the message says what to set."""


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and ``localhost`` (an interface only this machine reaches)."""
    host = host.strip("[]").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def require_login_off_loopback(host: str, auth: tuple[str, str] | None) -> None:
    """Raise :class:`UiRefused` when ``host`` is not loopback and there is no login."""
    if auth is None and not is_loopback(host):
        raise UiRefused(
            f"the web app would listen on {host} without a login, and anyone who reaches that address could "
            "train, delete and read everything with the API token: set VTP_UI_USERNAME and VTP_UI_PASSWORD "
            "(a login page then guards it), or listen on 127.0.0.1 (VTP_UI_HOST) and reach it through an SSH "
            "tunnel or a reverse proxy that logs users in")


def allowed_hosts(bind_host: str, extra: Iterable[str] = ()) -> frozenset[str] | None:
    """Host names the app answers to, lower case, without port; None = any (bound off loopback
    with a login and no VTP_UI_ALLOWED_HOSTS: the login is the guard, the name users type is not
    known)."""
    names = {h.strip().lower().strip("[]") for h in extra if h.strip()}
    if is_loopback(bind_host):
        return frozenset(LOOPBACK_NAMES | {bind_host.lower().strip("[]")} | names)
    return frozenset(names) if names else None


_HOST_HEADER = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(?::(\d{1,5}))?")


def _host_port(value: str) -> tuple[str, int | None] | None:
    """Host name (lower case, IPv6 without brackets) and port of a Host header value: ``name``,
    ``name:port`` or ``[v6]:port``; None for anything else (user info, paths, spaces)."""
    m = _HOST_HEADER.fullmatch(value.strip())
    if m is None:
        return None
    return m.group(1).strip("[]").lower(), int(m.group(2)) if m.group(2) else None


def _hostname(value: str) -> str | None:
    got = _host_port(value)
    return got[0] if got else None


def _origin_host_port(origin: str) -> tuple[str | None, int | None] | None:
    try:
        parts = urlsplit(origin)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            return None
        return parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        return None


class HostOriginGuard:
    """ASGI middleware: 400 for a Host not in ``hosts`` (when given), 403 for a state-changing
    request or WebSocket whose Origin is not this app's own address (same host and port as the
    Host header). ``Origin: null`` (sandboxed frames, files) counts as foreign."""

    def __init__(self, app: Any, hosts: frozenset[str] | None = None) -> None:
        self.app = app
        self.hosts = hosts

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        host_header = headers.get("host", "")
        name = _hostname(host_header)
        if self.hosts is not None and (name is None or name.lower() not in self.hosts):
            await self._refuse(scope, receive, send, 400,
                               "this address is not a name of the vtp web app; open it as http://127.0.0.1:<port> "
                               "(or add the name to VTP_UI_ALLOWED_HOSTS)")
            return
        origin = headers.get("origin")
        changing = scope["type"] == "websocket" or scope.get("method", "GET").upper() not in SAFE_METHODS
        if changing and origin is not None and not self._same_origin(origin, host_header, scope):
            await self._refuse(scope, receive, send, 403, "cross-site request refused: the page calling the vtp "
                               "web app is not the web app itself")
            return
        await self.app(scope, receive, send)

    @staticmethod
    def _same_origin(origin: str, host_header: str, scope: dict) -> bool:
        got = _origin_host_port(origin)
        if got is None:
            return False
        secure = scope.get("scheme") in ("https", "wss")
        host = _host_port(host_header)
        if host is None or got[0] is None:
            return False
        return (got[0].lower(), got[1]) == (host[0], host[1] or (443 if secure else 80))

    @staticmethod
    async def _refuse(scope: dict, receive: Any, send: Any, status: int, message: str) -> None:
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        body = json.dumps({"detail": message}).encode()
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})
