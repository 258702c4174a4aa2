"""How any vtp process reaches vtp's Prefect server: the API URL and auth string from
:class:`core.settings.Settings`, applied to Prefect's own client, and the deployment naming rule.

This is shared by the command line (``cli``), the API (``api``) and the flow (``flows``); it
imports only ``core.settings`` and Prefect/httpx (Prefect lazily, so importing it stays cheap).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import httpx

from core.settings import Settings, get_settings

if TYPE_CHECKING:
    from core.spec import TrainSpec


def deployment_name(spec: TrainSpec) -> str:
    """``train/train-<framework>``: the Prefect deployment (prefect.yaml) that trains ``spec``."""
    return f"train/train-{spec.framework}"


def server_healthy(api_url: str, timeout: float = 5.0) -> bool:
    """True when the Prefect server at ``api_url`` (``http://host:port/api``) answers ``/health``
    with 200 within ``timeout`` seconds; False on any HTTP or connection error."""
    try:
        return httpx.get(f"{api_url}/health", timeout=timeout).status_code == 200
    except httpx.HTTPError:
        return False


@contextlib.contextmanager
def prefect_api(settings: Settings | None = None) -> Iterator[None]:
    """Point this process's Prefect client at vtp's server, with its auth string, whenever prefect
    was imported (prefect reads its settings once, at import)."""
    from prefect.settings import PREFECT_API_AUTH_STRING, PREFECT_API_URL, temporary_settings

    settings = settings or get_settings()
    updates: dict[Any, Any] = {PREFECT_API_URL: settings.prefect_api_url}
    auth = settings.prefect_auth()
    if auth:
        updates[PREFECT_API_AUTH_STRING] = auth
    with temporary_settings(updates=updates):
        yield


@contextlib.contextmanager
def running_stack_server(settings: Settings | None = None) -> Iterator[bool]:
    """Around a flow called from Python (``train_flow({...})``): when no Prefect server was chosen
    (PREFECT_API_URL unset in the current settings), this is no nested flow run, and vtp's own
    server (VTP_PREFECT_API_URL, default the one `vtp up` starts) answers, use that server with
    its auth string — the run then shows in the Prefect UI the user has open, instead of in a
    temporary server of Prefect's own. Yields whether it did; otherwise changes nothing."""
    from prefect.context import FlowRunContext
    from prefect.settings import get_current_settings

    settings = settings or get_settings()
    if (get_current_settings().api.url or FlowRunContext.get() is not None
            or not server_healthy(settings.prefect_api_url, timeout=2.0)):
        yield False
        return
    with prefect_api(settings):
        yield True


@contextlib.contextmanager
def prefect_client(settings: Settings | None = None) -> Iterator[Any]:
    """A synchronous Prefect client (``prefect.client.orchestration.SyncPrefectClient``) talking to
    vtp's server; see :func:`prefect_api`."""
    from prefect.client.orchestration import get_client

    with prefect_api(settings), get_client(sync_client=True) as client:
        yield client
