"""Stale runs: a running run whose trainer stopped sending heartbeats.

Trainers heartbeat every few seconds through their callbacks. A run that has been silent for
``VTP_STALE_AFTER_S`` is marked in its history, set to crashed, and its Prefect flow run is set to
Crashed; vtp's crash-retry automation in Prefect then schedules it again, and the retried attempt
resumes from the run's last uploaded checkpoint (``VTP_CRASH_RETRIES`` bounds how often).

Heartbeats come from a thread of the run's process (tasks/liveness.py), not from the training loop, so a
slow but progressing run on a busy machine keeps heartbeating; silence means the process is gone,
frozen or cut off. A stale verdict fences the attempt off: its later callbacks are refused as
superseded and it stops without publishing (api/routes/internal.py), so two attempts never both
train. A trainer that is alive but makes no progress is the process's own watchdog's business
(``VTP_HUNG_AFTER_S``).
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from api import crud
from api.models import Run, utcnow
from api.prefect_runs import UNREACHABLE, _client
from api.run_states import Actor
from core.settings import Settings

log = logging.getLogger("vtp.api.stale")


def stale_runs(session: Session, settings: Settings) -> list[Run]:
    cutoff = utcnow() - timedelta(seconds=settings.stale_after_s)
    return list(session.scalars(select(Run).where(Run.state == "running", Run.last_heartbeat.is_not(None),
                                                  Run.last_heartbeat < cutoff)))


def crash_flow_run(flow_run_id: str, message: str, settings: Settings) -> bool:
    """Set the flow run Crashed (so Prefect's automation retries it); False when Prefect is unreachable."""
    from prefect.client.schemas.objects import State, StateType

    try:
        with _client(settings) as client:
            client.set_flow_run_state(flow_run_id, State(type=StateType.CRASHED, message=message), force=True)
    except UNREACHABLE as e:
        log.warning("flow run %s could not be marked crashed (Prefect unreachable: %s); trying again later",
                    flow_run_id, e)
        return False
    return True


def check_stale(session: Session, settings: Settings) -> list[str]:
    """Mark every stale run; returns their ids."""
    marked: list[str] = []
    for run in stale_runs(session, settings):
        silent = (utcnow() - run.last_heartbeat).total_seconds()
        message = (f"no heartbeat from the trainer for {silent:.0f} s (VTP_STALE_AFTER_S={settings.stale_after_s:g}): "
                   f"marked crashed after epoch {run.epochs_done}; Prefect retries it from its last checkpoint")
        if run.prefect_flow_run_id and not crash_flow_run(run.prefect_flow_run_id, message, settings):
            continue  # keep it running here until Prefect can be told, so the two stay in step
        crud.add_run_event(session, run=run, kind="stale", message=message, epoch=run.epochs_done, commit=False)
        crud.finish_run(session, run=run, state="crashed", by=Actor.REAPER, error=message)  # commits
        log.warning("run %s: %s", run.id, message)
        marked.append(run.id)
    return marked


class StaleMonitor:
    """Runs :func:`check_stale` every few seconds in a daemon thread of the API process."""

    def __init__(self, sessions: sessionmaker[Session], settings: Settings) -> None:
        self.sessions, self.settings = sessions, settings
        self.every_s = max(1.0, min(settings.stale_after_s / 4, 15.0))
        # The API's own downtime is not a trainer's silence: trainers buffer their heartbeats while the
        # API is away and deliver them once it is back, so judge no run before a whole stale period
        # has passed since this process started.
        self.grace_until = time.monotonic() + settings.stale_after_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="vtp-stale-runs", daemon=True)

    def start(self) -> StaleMonitor:
        self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.wait(self.every_s):
            if time.monotonic() < self.grace_until:
                continue
            try:
                with self.sessions() as session:
                    check_stale(session, self.settings)
            except Exception:  # noqa: BLE001 - a database hiccup must not end the monitor
                log.exception("stale-run check failed; trying again in %.0f s", self.every_s)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
