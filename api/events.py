"""Live run events: what the callback routes learn, fanned out to WebSocket subscribers.

In-process by default. With ``VTP_REDIS_URL`` set, events go through Redis pub/sub (channel
``vtp:run:<run_id>``), so several API processes can serve the same run's subscribers. Publishing is
synchronous (the callback routes run in the thread pool); subscribing is async.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
from collections import defaultdict
from collections.abc import AsyncIterator
from typing import Any, Protocol

log = logging.getLogger("vtp.api.events")


def channel(run_id: str) -> str:
    return f"vtp:run:{run_id}"


class Subscription(Protocol):
    async def get(self, timeout: float) -> dict[str, Any] | None: ...


class EventBus(Protocol):
    def publish(self, run_id: str, event: dict[str, Any]) -> None: ...
    def subscribe(self, run_id: str) -> contextlib.AbstractAsyncContextManager[Subscription]: ...
    async def close(self) -> None: ...


class _QueueSubscription:
    def __init__(self) -> None:
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    async def get(self, timeout: float) -> dict[str, Any] | None:
        try:
            return await asyncio.wait_for(self.queue.get(), timeout)
        except TimeoutError:
            return None


class InProcessBus:
    """Subscribers' queues live on the event loop; publishers on other threads hand events over
    with ``call_soon_threadsafe``."""

    def __init__(self) -> None:
        self._subs: dict[str, set[tuple[asyncio.AbstractEventLoop, _QueueSubscription]]] = defaultdict(set)
        self._lock = threading.Lock()

    def publish(self, run_id: str, event: dict[str, Any]) -> None:
        with self._lock:
            targets = list(self._subs.get(run_id, ()))
        for loop, sub in targets:
            with contextlib.suppress(RuntimeError):  # that subscriber's loop has closed
                loop.call_soon_threadsafe(sub.queue.put_nowait, event)

    @contextlib.asynccontextmanager
    async def subscribe(self, run_id: str) -> AsyncIterator[Subscription]:
        entry = (asyncio.get_running_loop(), _QueueSubscription())
        with self._lock:
            self._subs[run_id].add(entry)
        try:
            yield entry[1]
        finally:
            with self._lock:
                self._subs[run_id].discard(entry)
                if not self._subs[run_id]:
                    del self._subs[run_id]

    async def close(self) -> None:
        return None


class _RedisSubscription:
    def __init__(self, pubsub: Any) -> None:
        self.pubsub = pubsub

    async def get(self, timeout: float) -> dict[str, Any] | None:
        message = await self.pubsub.get_message(ignore_subscribe_messages=True, timeout=timeout)
        if message is None:
            return None
        return json.loads(message["data"])


class RedisBus:
    def __init__(self, url: str) -> None:
        import redis
        import redis.asyncio as aredis

        self.url = url
        self._sync = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
        self._async = aredis.Redis.from_url(url)

    def publish(self, run_id: str, event: dict[str, Any]) -> None:
        try:
            self._sync.publish(channel(run_id), json.dumps(event, default=str))
        except Exception as e:  # noqa: BLE001 - live updates are best effort; the DB holds the truth
            log.warning("could not publish a run event to Redis at %s: %s", self.url, e)

    @contextlib.asynccontextmanager
    async def subscribe(self, run_id: str) -> AsyncIterator[Subscription]:
        pubsub = self._async.pubsub()
        await pubsub.subscribe(channel(run_id))
        try:
            yield _RedisSubscription(pubsub)
        finally:
            await pubsub.unsubscribe(channel(run_id))
            await pubsub.aclose()

    async def close(self) -> None:
        self._sync.close()
        await self._async.aclose()


def make_bus(redis_url: str | None) -> EventBus:
    return RedisBus(redis_url) if redis_url else InProcessBus()
