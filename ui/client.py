"""A small synchronous client of the vtp REST API (the UI never touches the database), and a
follower of one run's live updates over the API's WebSocket (``WS /api/runs/{id}/ws``)."""

from __future__ import annotations

import json
import logging
import mimetypes
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI
from websockets.sync.client import connect

log = logging.getLogger(__name__)

ACTIVE = ("queued", "pending", "running")

FOLLOW_TIMEOUT_S = 6 * 3600.0  # the longest one follower stays on a run
HEARTBEAT_S = 5.0  # the longest a follower goes without yielding, new or not
POLL_S = 2.0  # the REST fallback's interval, when the socket cannot be opened
OPEN_TIMEOUT_S = 10.0  # for one WebSocket opening handshake
OPEN_ATTEMPTS = 3  # failed openings in a row before the follower falls back to polling
BURST_S = 0.2  # events this close together make one update (a snapshot's state and its stored epochs)
BACKOFF_S = (0.5, 8.0)  # first and longest wait before reopening a dropped socket (doubling)


class ApiError(RuntimeError):
    """A refused or failed request, with the API's own message (``detail``, ``problems``)."""

    def __init__(self, status: int, message: str, problems: list[dict[str, Any]] | None = None):
        super().__init__(message)
        self.status = status
        self.problems = problems or []  # the API's per-file findings (``message``, ``message_ko``)


def _problems(resp: httpx.Response) -> list[dict[str, Any]]:
    try:
        body = resp.json()
    except ValueError:
        return []
    found = body.get("problems") if isinstance(body, dict) else None
    return [p for p in found or [] if isinstance(p, dict)]


def _message(resp: httpx.Response) -> str:
    try:
        body = resp.json()
    except ValueError:
        return resp.text[:500] or resp.reason_phrase
    detail = body.get("detail") if isinstance(body, dict) else body
    if isinstance(detail, list):  # FastAPI validation errors
        detail = "; ".join(f"{'.'.join(str(p) for p in d.get('loc', [])[1:])}: {d.get('msg')}"
                           if isinstance(d, dict) else str(d) for d in detail)
    parts = [str(detail or resp.reason_phrase)]
    problems = body.get("problems") if isinstance(body, dict) else None
    for p in (problems or [])[:10]:  # each with its file: "which file" is half of what to fix
        if isinstance(p, dict):
            where = p.get("file") or ""
            parts.append(f"- {where + ': ' if where else ''}{p.get('message', p)}")
        else:
            parts.append(f"- {p}")
    if len(problems or []) > 10:
        parts.append(f"- … {len(problems) - 10} more")
    return "\n".join(parts)


@dataclass
class RunUpdate:
    """One look at a followed run.

    ``run`` is the run as ``GET /api/runs/{id}`` returns it (``epochs_done`` kept up to date from the
    metric events between state changes); ``points`` its per-epoch metrics as ``GET
    /api/runs/{id}/metrics`` lists them (``{"epoch": int, "name": str, "value": float}``, ordered by
    epoch, then name); ``changed`` is False for a heartbeat (nothing new since the last update);
    ``via`` is ``"socket"`` or ``"poll"``."""

    run: dict[str, Any]
    points: list[dict[str, Any]] = field(default_factory=list)
    changed: bool = True
    via: str = "socket"

    @property
    def ended(self) -> bool:
        """The run has reached a terminal state (completed, failed, cancelled, crashed)."""
        return self.run.get("state") not in ACTIVE


class _RunState:
    """What is known of a followed run, built from the socket's events or the REST answers."""

    def __init__(self, run_id: str):
        self.run: dict[str, Any] = {"id": run_id, "state": "queued", "spec": {}, "epochs_done": 0}
        self.values: dict[tuple[int, str], float] = {}

    def apply(self, event: dict[str, Any]) -> None:
        """One socket event: ``{"type": "state", "run": {...}}`` or ``{"type": "metrics", "epoch": int,
        "epochs": int | None, "metrics": {name: value}}``; ApiError for ``{"type": "error"}``."""
        kind = event.get("type")
        if kind == "state" and isinstance(event.get("run"), dict):
            done = self.run.get("epochs_done") or 0
            self.run = dict(event["run"])
            if self.run.get("state") in ACTIVE:  # points may have arrived before the row caught up
                self.run["epochs_done"] = max(done, self.run.get("epochs_done") or 0)
        elif kind == "metrics":
            epoch = int(event["epoch"])
            for name, value in (event.get("metrics") or {}).items():
                if isinstance(value, int | float) and not isinstance(value, bool):
                    self.values[(epoch, name)] = float(value)
            self.run["epochs_done"] = max(self.run.get("epochs_done") or 0, epoch)
        elif kind == "error":
            raise ApiError(404, str(event.get("message") or "the run's live updates were refused"))

    def replace_points(self, points: list[dict[str, Any]]) -> None:
        self.values = {(int(p["epoch"]), p["name"]): float(p["value"]) for p in points}

    def update(self, *, changed: bool, via: str) -> RunUpdate:
        points = [{"epoch": e, "name": n, "value": v} for (e, n), v in sorted(self.values.items())]
        return RunUpdate(run=dict(self.run), points=points, changed=changed, via=via)


def _receive(ws: Any, timeout: float) -> dict[str, Any] | None:
    """The next event of the socket as JSON, or None when none came within ``timeout`` seconds
    (0: only one already received). ConnectionClosed when the socket has closed."""
    try:
        message = ws.recv(timeout=timeout)
    except TimeoutError:
        return None
    try:
        event = json.loads(message)
    except ValueError as e:
        raise ApiError(0, f"the run's live updates sent something that is not JSON: {str(message)[:200]!r}") from e
    return event if isinstance(event, dict) else {}


class ApiClient:
    def __init__(self, base_url: str, token: str, *, timeout: float = 60.0, transport: httpx.BaseTransport | None = None):
        self.base_url = base_url.rstrip("/")
        self._token = token
        self.http = httpx.Client(base_url=self.base_url, headers={"Authorization": f"Bearer {token}"},
                                 timeout=timeout, transport=transport)

    def _call(self, method: str, path: str, *, raw: bool = False, status: bool = False, **kw: Any) -> Any:
        """The response's JSON (or bytes when it is not JSON, or always with ``raw``); with ``status``
        (that, the HTTP status code). ApiError otherwise."""
        try:
            resp = self.http.request(method, path, **kw)
        except httpx.HTTPError as e:
            raise ApiError(0, f"the vtp API at {self.base_url} did not answer ({e}): is `vtp up` running?") from e
        if resp.status_code >= 400:
            raise ApiError(resp.status_code, _message(resp), _problems(resp))
        body = resp.json() if not raw and resp.headers.get("content-type", "").startswith("application/json") \
            else resp.content
        return (body, resp.status_code) if status else body

    # -- chat --------------------------------------------------------------------------------
    def chat(self, message: str, session_id: int | None = None, confirm: bool = False) -> dict[str, Any]:
        return self._call("POST", "/api/chat", json={"session_id": session_id, "message": message, "confirm": confirm})

    def chat_history(self, session_id: int) -> dict[str, Any]:
        return self._call("GET", f"/api/chat/{session_id}")

    # -- runs --------------------------------------------------------------------------------
    def runs(self, limit: int = 100) -> list[dict[str, Any]]:
        return self._call("GET", "/api/runs", params={"limit": limit})["items"]

    def run(self, run_id: str) -> dict[str, Any]:
        return self._call("GET", f"/api/runs/{run_id}")

    def start_run(self, spec: dict[str, Any]) -> dict[str, Any]:
        return self._call("POST", "/api/runs", json={"spec": spec})

    def metrics(self, run_id: str) -> list[dict[str, Any]]:
        return self._call("GET", f"/api/runs/{run_id}/metrics")["points"]

    def artifacts(self, run_id: str) -> list[dict[str, Any]]:
        return self._call("GET", f"/api/runs/{run_id}/artifacts")["files"]

    def download(self, run_id: str, path: str, dest: Path) -> Path:
        """Save one file of the run's outputs to ``dest`` (kept when it is already there)."""
        if not dest.exists():
            dest.parent.mkdir(parents=True, exist_ok=True)
            data = self._call("GET", f"/api/runs/{run_id}/artifacts/{path}", raw=True)  # a .json file is a file too
            tmp = dest.with_name(dest.name + ".part")
            tmp.write_bytes(data)
            tmp.replace(dest)
        return dest

    def exports(self, run_id: str) -> dict[str, Any]:
        return self._call("GET", f"/api/runs/{run_id}/exports")

    def export(self, run_id: str, fmt: str) -> dict[str, Any]:
        return self._call("POST", f"/api/runs/{run_id}/export", params={"format": fmt})

    def compare(self, run_ids: list[str], lang: str = "en") -> dict[str, Any]:
        """GET /api/compare with details (curves, per-class metric, plot paths, exports)."""
        return self._call("GET", "/api/compare", params={"runs": run_ids, "lang": lang, "details": "true"})

    # -- model registry ----------------------------------------------------------------------------
    def promote(self, run_id: str, name: str | None = None, aliases: list[str] | None = None,
                export: str | None = None) -> dict[str, Any]:
        """A new version of model ``name`` (default <model>-<dataset>) from the run (api.registry)."""
        return self._call("POST", "/api/models", json={"run": run_id, "name": name or None, "alias": aliases or [],
                                                        "export": export or None}, timeout=None)

    def registry(self) -> list[dict[str, Any]]:
        """Every registered model with its versions, newest first."""
        names = [m["name"] for m in self._call("GET", "/api/models")["models"]]
        return [self._call("GET", f"/api/models/{quote(n, safe='')}") for n in names]

    def set_alias(self, name: str, alias: str, version: str) -> dict[str, Any]:
        return self._call("PUT", f"/api/models/{quote(name, safe='')}/aliases/{quote(alias, safe='')}",
                          json={"version": version})

    def cancel(self, run_id: str) -> dict[str, Any]:
        return self._call("POST", f"/api/runs/{run_id}/cancel")

    def retry(self, run_id: str) -> dict[str, Any]:
        return self._call("POST", f"/api/runs/{run_id}/retry")

    def logs(self, run_id: str, tail: int = 200) -> list[dict[str, Any]]:
        return self._call("GET", f"/api/runs/{run_id}/logs", params={"tail": tail})["lines"]

    # -- live updates ------------------------------------------------------------------------
    def ws_url(self, run_id: str) -> str:
        """The run's WebSocket: ``ws://`` for an ``http://`` API, ``wss://`` for ``https://``."""
        scheme, rest = self.base_url.split("://", 1)
        return f"{'wss' if scheme == 'https' else 'ws'}://{rest}/api/runs/{quote(run_id, safe='')}/ws"

    def follow(self, run_id: str, *, timeout_s: float = FOLLOW_TIMEOUT_S, heartbeat_s: float = HEARTBEAT_S,
               alive: Callable[[], bool] = lambda: True) -> Iterator[RunUpdate]:
        """The run's updates as they arrive over ``WS /api/runs/{run_id}/ws``.

        The first update is the run as it is (state and every stored epoch's metrics); then one per
        batch of events (those less than ``BURST_S`` apart), and a heartbeat (``changed=False``) after ``heartbeat_s`` seconds without
        any, so that a consumer that went away is noticed at the next yield (a generator closed
        there closes its socket). A dropped socket is reopened with backoff (0.5 s doubling to 8 s);
        the server's snapshot on reopening fills in what was missed. Only when the socket cannot be
        opened (the server answers the upgrade with an HTTP status, e.g. a proxy without WebSocket
        support, or ``OPEN_ATTEMPTS`` openings in a row fail) does it fall back to polling the REST
        API every ``POLL_S`` seconds, and logs a warning saying so.

        Ends after the update in which the run reached a terminal state, when ``alive()`` returns
        False (checked at least once a second), or after ``timeout_s`` seconds. Raises ApiError when
        the run does not exist or the API refuses the token."""
        deadline = time.monotonic() + timeout_s
        state = _RunState(run_id)

        def going() -> bool:
            return time.monotonic() < deadline and alive()

        def pause(seconds: float) -> bool:
            """Sleep up to ``seconds`` in one-second slices; False when the follower must stop."""
            end = time.monotonic() + seconds
            while going() and (left := end - time.monotonic()) > 0:
                time.sleep(min(1.0, left))
            return going()

        failures, delay, url = 0, BACKOFF_S[0], self.ws_url(run_id)
        while going():
            try:
                ws = connect(url, additional_headers={"Authorization": f"Bearer {self._token}"},
                             open_timeout=OPEN_TIMEOUT_S, close_timeout=2, max_size=2**24)
            except InvalidStatus as e:
                code = e.response.status_code
                if code in (401, 403):  # refused before the upgrade: the REST API says why
                    self.run(run_id)
                log.warning("the live updates of run %s cannot be opened at %s (HTTP %s): following it by "
                            "polling the REST API every %.1f s instead", run_id, url, code, POLL_S)
                yield from self._poll(state, run_id, going, pause)
                return
            except (OSError, TimeoutError, InvalidHandshake, InvalidURI) as e:
                failures += 1
                if failures >= OPEN_ATTEMPTS:
                    log.warning("the live updates of run %s cannot be opened at %s (%s, %d tries): following it "
                                "by polling the REST API every %.1f s instead", run_id, url, e, failures, POLL_S)
                    yield from self._poll(state, run_id, going, pause)
                    return
                log.info("opening the live updates of run %s failed (%s); again in %.1f s", run_id, e, delay)
                if not pause(delay):
                    return
                delay = min(delay * 2, BACKOFF_S[1])
                continue
            failures, pending = 0, False
            try:
                with ws:
                    quiet_since = time.monotonic()
                    while going():
                        event = _receive(ws, 1.0)
                        if event is None:
                            if time.monotonic() - quiet_since >= heartbeat_s:
                                quiet_since = time.monotonic()
                                yield state.update(changed=False, via="socket")
                            continue
                        state.apply(event)
                        pending = True
                        # a burst as one update: the snapshot's stored epochs follow its state at once
                        while (event := _receive(ws, BURST_S)) is not None:
                            state.apply(event)
                        update, pending = state.update(changed=True, via="socket"), False
                        delay = BACKOFF_S[0]  # the socket works: a later drop starts the backoff afresh
                        yield update
                        quiet_since = time.monotonic()
                        if update.ended:
                            return
                    return
            except ConnectionClosed as e:
                if pending:
                    update = state.update(changed=True, via="socket")
                    yield update
                    if update.ended:
                        return
                if state.update(changed=False, via="socket").ended:
                    return
                log.info("the live updates of run %s were cut (%s); reopening in %.1f s", run_id, e, delay)
            if not pause(delay):
                return
            delay = min(delay * 2, BACKOFF_S[1])

    def _poll(self, state: _RunState, run_id: str, going: Callable[[], bool],
              pause: Callable[[float], bool]) -> Iterator[RunUpdate]:
        """The follower's fallback: the run and its metrics from the REST API every POLL_S seconds.
        An API that does not answer (or answers 5xx) is asked again; a refusal (4xx) is raised."""
        last: tuple[Any, Any] | None = None
        while going():
            try:
                state.run = self.run(run_id)
                state.replace_points(self.metrics(run_id))
            except ApiError as e:
                if 0 < e.status < 500:
                    raise
                log.info("polling run %s: %s; again in %.1f s", run_id, e, POLL_S)
            else:
                update = state.update(changed=True, via="poll")
                update.changed = last != (last := (update.run, update.points))
                yield update
                if update.ended:
                    return
            if not pause(POLL_S):
                return

    def predict(self, run_id: str, image: Path, conf: float = 0.25) -> dict[str, Any]:
        mime = mimetypes.guess_type(image.name)[0] or "application/octet-stream"
        with open(image, "rb") as f:
            return self._call("POST", f"/api/runs/{run_id}/predict", params={"conf": conf},
                              files={"file": (image.name, f, mime)})

    # -- datasets ----------------------------------------------------------------------------
    def datasets(self) -> list[dict[str, Any]]:
        return self._call("GET", "/api/datasets", params={"limit": 500})["items"]

    def dataset(self, dataset_id: int) -> dict[str, Any]:
        return self._call("GET", f"/api/datasets/{dataset_id}")

    def upload_dataset(self, name: str, archive: Path, task: str | None = None,
                       val_fraction: float | None = None) -> dict[str, Any]:
        """Upload a dataset archive; ``val_fraction`` (0-0.5) is the share of train put in val when
        the archive has no val split (the API's default 0.2 when None). The dataset, with ``stored``:
        False when the content equals an existing version's (the API's 200: nothing new was stored)."""
        data = {"name": name, **({"task": task} if task else {}),
                **({"val_fraction": str(val_fraction)} if val_fraction else {})}
        with open(archive, "rb") as f:
            body, code = self._call("POST", "/api/datasets", data=data, files={"file": (archive.name, f)},
                                    timeout=None, status=True)
        return {**body, "stored": code == 201}

    def register_dataset(self, name: str, uri: str, task: str | None = None) -> dict[str, Any]:
        return self._call("POST", "/api/datasets", json={"name": name, "uri": uri, **({"task": task} if task else {})})

    def make_sample(self, sample: str) -> dict[str, Any]:
        return self._call("POST", "/api/datasets/sample", json={"name": sample}, timeout=300)

    def samples(self, dataset_id: int, n: int = 8) -> list[dict[str, Any]]:
        return self._call("GET", f"/api/datasets/{dataset_id}/samples", params={"n": n}, timeout=300)["items"]
