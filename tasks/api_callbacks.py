"""Posting a run's heartbeats, metrics and outcome to the vtp API with its run token.

Training never waits on the API: posts go through a queue drained by one background thread, which
retries with exponential backoff while the API is unreachable and delivers everything, in order,
once it is back. The API renews the run token with each heartbeat and can ask the run to stop
(a cancel made through the API reaches the trainer as ``should_stop``).
"""

from __future__ import annotations

import collections
import logging
import random
import threading
import time
from typing import Any

import httpx

from core.contracts import Callbacks

log = logging.getLogger("vtp.callbacks")
MAX_BACKOFF_S = 5.0


class ApiReporter:
    """Posts one run's callbacks; ``attempt`` (Prefect's run_count) goes with each, so the API can
    refuse an attempt that a retry replaced: then ``superseded`` turns True and the run must stop
    without publishing anything."""

    def __init__(self, api_url: str, run_id: str, token: str, *, timeout_s: float = 5.0, attempt: int | None = None):
        self.base = f"{api_url.rstrip('/')}/api/internal/runs/{run_id}"
        self.token = token
        self.attempt = attempt
        self.cancel_requested = False
        self.superseded = False
        self.delivered = 0
        self._queue: collections.deque[tuple[str, dict[str, Any]]] = collections.deque()
        self._cond = threading.Condition()
        self._closing = False
        self._client = httpx.Client(timeout=timeout_s)
        self._thread = threading.Thread(target=self._drain, name="vtp-api-callbacks", daemon=True)
        self._thread.start()

    def attach(self, callbacks: Callbacks) -> None:
        """Metrics each epoch and the API's cancel as a stop check. Heartbeats come from
        :class:`tasks.liveness.Liveness` on a clock, not from the training loop."""
        callbacks.add("on_epoch_end", self.metrics)
        callbacks.add_stop_check(lambda: self.cancel_requested or self.superseded)

    def heartbeat(self, **_: Any) -> None:
        with self._cond:  # one pending heartbeat is enough: drop older ones
            if not any(kind == "heartbeat" for kind, _ in self._queue):
                self._queue.append(("heartbeat", {}))
            self._cond.notify()

    def metrics(self, epoch: int, epochs: int, metrics: dict[str, float]) -> None:
        self._put("metrics", {"epoch": epoch, "epochs": epochs, "metrics": metrics})

    def event(self, kind: str, message: str, **data: Any) -> None:
        """Add to the run's history in the API (e.g. resumed after a crash, from which epoch)."""
        self._put("events", {"kind": kind, "message": message, **data})

    def done(self, state: str, **payload: Any) -> None:
        self._put("done", {"state": state, **payload})

    def _put(self, kind: str, body: dict[str, Any]) -> None:
        with self._cond:
            self._queue.append((kind, body))
            self._cond.notify()

    def close(self, timeout_s: float = 60.0) -> bool:
        """Deliver what is queued (waiting at most ``timeout_s``); True when nothing was left."""
        with self._cond:
            self._closing = True
            self._cond.notify()
        self._thread.join(timeout_s)
        left = len(self._queue)
        if left:
            log.warning("%d callback(s) could not be delivered to %s within %.0fs", left, self.base, timeout_s)
        self._client.close()
        return left == 0

    def _drain(self) -> None:
        backoff = 0.5
        while True:
            with self._cond:
                while not self._queue and not self._closing:
                    self._cond.wait()
                if not self._queue:
                    return
                kind, body = self._queue[0]
            try:
                self._post(kind, body)
            except (httpx.HTTPError, _Retry) as e:
                log.debug("callback %s failed (%s); retrying in %.1fs", kind, e, backoff)
                time.sleep(backoff * (0.5 + random.random()))
                backoff = min(backoff * 2, MAX_BACKOFF_S)
                continue
            except _Refused as e:  # the API will never take it (e.g. the run is gone): drop it
                if "superseded" in str(e) or "already ended" in str(e):
                    self.superseded = True  # replaced, cancelled or ended elsewhere: publish nothing more
                log.warning("the API refused %s for this run: %s", kind, e)
            backoff = 0.5
            with self._cond:
                self._queue.popleft()
                self.delivered += 1

    def _post(self, kind: str, body: dict[str, Any]) -> None:
        headers = {"Authorization": f"Bearer {self.token}"}
        if self.attempt is not None:
            headers["X-Vtp-Attempt"] = str(self.attempt)
        response = self._client.post(f"{self.base}/{kind}", json=body, headers=headers)
        if response.status_code >= 500 or response.status_code in (408, 429):
            raise _Retry(f"HTTP {response.status_code}")
        if response.status_code >= 400:
            raise _Refused(f"HTTP {response.status_code}: {response.text[:200]}")
        data = response.json() if response.content else {}
        self.token = data.get("token") or self.token
        self.cancel_requested = self.cancel_requested or bool(data.get("cancel"))


class _Retry(Exception):
    pass


class _Refused(Exception):
    pass
