"""``python -m cli.prefect_worker worker start ...``: Prefect's own CLI, with one change to how a
worker reports a crashed flow run: it does not report a crash that was already reported.

Why: in Prefect 3.8 the process worker's run executor reports a flow run Crashed when its process
exits non-zero (``prefect.runner.state_proposer``), and then ``BaseWorker`` reports it Crashed a
second time for the same exit. vtp's crash-retry automation reschedules the run on the first report
within a second, so the second report lands on the *retried* attempt, crashes it and costs a second
retry (seen on a busy machine: one ``kill -9``, attempts 2 and 3; tests/integration/
test_crash_recovery.py). Patched: before proposing Crashed, the worker reads the flow run's state
history and skips the proposal when a Crashed state was recorded after this submission began —
that crash is this exit's, already reported. A crash nobody reported yet is proposed as before.

This reaches into ``prefect.workers.base.BaseWorker._propose_crashed_state``;
tests/integration/test_crash_recovery.py (``test_a_crash_is_reported_once``) fails if a Prefect
upgrade moves it.
"""

from __future__ import annotations

import contextvars
import runpy
import sys
from datetime import UTC, datetime
from typing import Any

_picked_up: contextvars.ContextVar[datetime | None] = contextvars.ContextVar("vtp_picked_up", default=None)


def report_each_crash_once() -> None:
    """Patch BaseWorker so a crash already recorded since this submission began is not proposed
    again (idempotent). Each submission runs in its own task, so the time it began is kept in a
    context variable: a later submission of the same flow run (the retry) does not move it."""
    from prefect.workers.base import BaseWorker

    original = BaseWorker._propose_crashed_state
    if getattr(original, "_vtp_once", False):
        return
    submit = BaseWorker._submit_run_and_capture_errors

    async def _submit_run_and_capture_errors(self: Any, flow_run: Any, *args: Any, **kwargs: Any) -> Any:
        _picked_up.set(datetime.now(UTC))
        return await submit(self, flow_run, *args, **kwargs)

    async def _propose_crashed_state(self: Any, flow_run: Any, message: str, client: Any = None) -> None:
        client = client or self.client
        picked_up = _picked_up.get() or getattr(getattr(flow_run, "state", None), "timestamp", None)
        logger = self.get_flow_run_logger(flow_run)
        if picked_up is not None:
            try:
                history = await client.read_flow_run_states(flow_run.id)
            except Exception as e:  # noqa: BLE001 - cannot tell: report, as Prefect would
                logger.info("flow run %s: its state history could not be read (%s)", flow_run.id, e)
                history = []
            crashes = [s.timestamp for s in history if s.is_crashed()]
            if any(t > picked_up for t in crashes):
                logger.info("flow run %s: this exit was already reported as a crash; not reporting it again (%s)",
                            flow_run.id, message)
                return
            logger.info("flow run %s: no crash recorded since this submission began at %s (crashes: %s)",
                        flow_run.id, picked_up.isoformat(), [t.isoformat() for t in crashes])
        await original(self, flow_run, message, client=client)

    _propose_crashed_state._vtp_once = True  # type: ignore[attr-defined]
    BaseWorker._propose_crashed_state = _propose_crashed_state  # type: ignore[method-assign]
    BaseWorker._submit_run_and_capture_errors = _submit_run_and_capture_errors  # type: ignore[method-assign]


def main() -> None:
    report_each_crash_once()
    sys.argv = ["prefect", *sys.argv[1:]]
    runpy.run_module("prefect", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
