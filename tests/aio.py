"""Run a coroutine from a synchronous test, whatever else the test session has running.

The UI tests hold a session-scoped sync Playwright, which keeps an event loop marked running in the
main thread until the session ends; ``asyncio.run`` in any later test then raises "cannot be called
from a running event loop". A fresh thread has no running loop, so the result does not depend on
the order tests run in."""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any


def run_async(coro_fn: Callable[..., Awaitable[Any]], *args: Any, timeout_s: float = 300) -> Any:
    """``asyncio.run(coro_fn(*args))`` in its own thread, in a copy of the caller's context
    variables; returns its result, re-raises its error.

    Raises ``concurrent.futures.TimeoutError`` after ``timeout_s`` seconds."""
    context = contextvars.copy_context()  # the caller's settings (e.g. Prefect's temporary_settings) go along
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(context.run, lambda: asyncio.run(coro_fn(*args))).result(timeout=timeout_s)
