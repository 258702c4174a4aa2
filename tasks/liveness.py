"""A run process's own sense of its health, on a clock of its own (one daemon thread):

- **Heartbeats** to the API every ``VTP_HEARTBEAT_EVERY_S`` (default 5 s), whatever the training
  loop is doing. A slow batch, a long validation or a machine busy with other work never makes a
  progressing run look dead; only a process that is gone, frozen or cut off falls silent, and the
  API's stale check (``VTP_STALE_AFTER_S``) is about exactly that.
- **Hung trainer**: alive but without progress (no batch, epoch, checkpoint or log line, see
  :class:`core.contracts.Callbacks`) for ``VTP_HUNG_AFTER_S`` while training. The watchdog records
  why and where (epoch, batches), marks the flow run Crashed with that message, and kills its own
  process (SIGKILL, data-loader children first): Prefect's crash-retry automation then retries the
  run from its last checkpoint, or ``VTP_CRASH_RETRIES`` ends it.
- **Fencing**: when this attempt was replaced — the API refuses its callbacks as superseded, or
  Prefect shows a newer attempt (``run_count``) or a Crashed/rescheduled flow run — the process
  stops at once without publishing anything and exits 0 (so its worker reports nothing over the
  newer attempt's state). Two attempts of one run never train, upload or publish side by side.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from core.contracts import Callbacks

log = logging.getLogger("vtp.liveness")
FENCE_EVERY_S = 15.0  # how often Prefect is asked whether this attempt is still the current one


def _flush_prefect_logs() -> None:
    with contextlib.suppress(Exception):
        from prefect.logging.handlers import APILogHandler

        APILogHandler.flush()


def kill_process_tree(pid: int | None = None) -> None:
    """SIGKILL ``pid`` (default: this process) after its children (data-loader workers)."""
    pid = pid or os.getpid()
    try:
        import psutil  # ultralytics' and prefect's dependency

        children = psutil.Process(pid).children(recursive=True)
    except Exception:  # noqa: BLE001 - without the list, the children notice their parent's death
        children = []
    for child in children:
        with contextlib.suppress(Exception):
            child.kill()
    os.kill(pid, signal.SIGKILL)


def crash_flow_run(flow_run_id: str, message: str) -> None:
    """Set the flow run Crashed with ``message`` (so the Prefect UI says why before the process dies)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.objects import State, StateType

    with get_client(sync_client=True) as client:
        client.set_flow_run_state(flow_run_id, State(type=StateType.CRASHED, message=message), force=True)


def prefect_superseded(flow_run_id: str, attempt: int) -> str | None:
    """Why Prefect no longer runs ``attempt`` of this flow run, or None while it does."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.objects import StateType

    with get_client(sync_client=True) as client:
        run = client.read_flow_run(flow_run_id)
    if (run.run_count or 0) > attempt:
        return f"Prefect started attempt {run.run_count} of this flow run"
    state = run.state.type if run.state else None
    if state in (StateType.CRASHED, StateType.SCHEDULED, StateType.PENDING):
        return f"Prefect shows the flow run {run.state.name} (it will be, or was, retried)"
    return None


class Liveness:
    """The thread described in the module doc. Start it when the run starts; call :meth:`watch`
    around training (the hung check applies only there) and :meth:`stop` at the end.

    ``heartbeat`` is called every ``every_s`` seconds (the API reporter's heartbeat, or nothing).
    ``superseded`` reports a replaced attempt (the reporter's flag); ``flow_run_id`` adds Prefect's
    view every :data:`FENCE_EVERY_S`. ``on_hung(message)`` and ``on_superseded(reason)`` default to
    killing / exiting the process as described; tests pass their own."""

    def __init__(self, callbacks: Callbacks, *, every_s: float, hung_after_s: float, attempt: int = 1,
                 heartbeat: Callable[[], None] | None = None, superseded: Callable[[], bool] | None = None,
                 flow_run_id: str | None = None, logger: Any = None,
                 on_hung: Callable[[str], None] | None = None,
                 on_superseded: Callable[[str], None] | None = None,
                 event: Callable[..., None] | None = None, workdir: Path | None = None) -> None:
        self.callbacks, self.every_s, self.hung_after_s, self.attempt = callbacks, every_s, hung_after_s, attempt
        self._heartbeat, self._superseded = heartbeat, superseded or (lambda: False)
        self.flow_run_id, self.logger = flow_run_id, logger or log
        self._on_hung = on_hung or self._kill_hung
        self._on_superseded = on_superseded or self._exit_superseded
        self._event, self.workdir = event, workdir
        self.superseded_reason: str | None = None
        self.hung_message: str | None = None
        self._watching = False
        self._stop = threading.Event()
        self._prefect_reason: str | None = None
        # Both threads run in a copy of the creating thread's context: Prefect's settings (which server,
        # e.g. a `temporary_settings(PREFECT_API_URL=...)` around the flow) live in context variables, and a
        # bare thread would not see them (its client would start a temporary server of its own).
        self._thread = threading.Thread(target=contextvars.copy_context().run, args=(self._loop,),
                                        name="vtp-liveness", daemon=True)
        # Prefect is asked on a thread of its own: a slow or unreachable server must never delay a heartbeat
        self._fence = threading.Thread(target=contextvars.copy_context().run, args=(self._fence_loop,),
                                       name="vtp-fence", daemon=True)
        callbacks.add_stop_check(lambda: self.superseded_reason is not None)

    def start(self) -> Liveness:
        self._thread.start()
        if self.flow_run_id:
            self._fence.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout=10)  # the fence thread is a daemon: a slow Prefect call is not waited for

    @contextlib.contextmanager
    def watch(self):
        """The hung-trainer check is on inside this block (training), off outside it."""
        self.callbacks.progress()
        self._watching = True
        try:
            yield self
        finally:
            self._watching = False

    # ---------------------------------------------------------------------------------- the loop

    def _loop(self) -> None:
        while not self._stop.wait(self.every_s):
            try:
                self.tick()
            except Exception as e:  # noqa: BLE001 - the watchdog must outlive any one failed check
                log.debug("liveness check failed: %s", e)

    def _fence_loop(self) -> None:
        while not self._stop.wait(FENCE_EVERY_S):
            with contextlib.suppress(Exception):  # Prefect unreachable or slow: ask again next round
                self._prefect_reason = prefect_superseded(str(self.flow_run_id), self.attempt)

    def tick(self) -> None:
        """One round: heartbeat, fence check, hung check (the thread calls it every ``every_s``)."""
        if self._heartbeat:
            self._heartbeat()
        reason = "the API refused this attempt's callbacks (superseded, or the run already ended)" \
            if self._superseded() else self._prefect_reason
        if reason and self.superseded_reason is None:
            self.superseded_reason = reason
            self._on_superseded(reason)
            return
        silent = time.monotonic() - self.callbacks.last_progress
        if self._watching and self.hung_after_s > 0 and silent > self.hung_after_s and self.hung_message is None:
            self.hung_message = (
                f"the trainer hung: no progress for {silent:.0f} s (VTP_HUNG_AFTER_S={self.hung_after_s:g}); "
                f"last progress at {self.callbacks.where()}. Its process (pid {os.getpid()}) is killed and the run "
                "is retried from its last checkpoint while VTP_CRASH_RETRIES allows."
            )
            self._on_hung(self.hung_message)

    # --------------------------------------------------------------------------------- the actions

    def _kill_hung(self, message: str) -> None:
        self.logger.error("%s", message)
        if self._event:
            with contextlib.suppress(Exception):
                self._event("hung", message, epoch=max(self.callbacks.epoch_now - 1, 0), attempt=self.attempt)
        if self.flow_run_id:
            with contextlib.suppress(Exception):
                crash_flow_run(self.flow_run_id, message)
        _flush_prefect_logs()
        kill_process_tree()

    def _exit_superseded(self, reason: str) -> None:
        self.logger.warning("attempt %d of this run stops without publishing anything: %s", self.attempt, reason)
        _flush_prefect_logs()
        if self.workdir is not None:
            import shutil

            shutil.rmtree(self.workdir, ignore_errors=True)
        os._exit(0)  # no Prefect state from here: the newer attempt owns the flow run now
