"""``python -m core.prefect_worker worker start ...``: Prefect's own CLI, with one change to how a
worker reports a crashed flow run: it does not report a crash that was already reported.

Why: in Prefect 3.8 the process worker's run executor reports a flow run Crashed when its process
exits non-zero (``prefect.runner.state_proposer``), and then ``BaseWorker`` reports it Crashed a
second time for the same exit. vtp's crash-retry automation reschedules the run on the first report
within a second, so the second report lands on the *retried* attempt, crashes it and costs a second
retry (seen on a busy machine: one ``kill -9``, attempts 2 and 3; tests/integration/
test_crash_recovery.py). Patched: before proposing Crashed, the worker reads the flow run's state
history and skips the proposal when a Crashed state was recorded after the state it picked the run
up in — that crash is this exit's, already reported. A crash nobody reported yet is proposed as
before.

This reaches into ``prefect.workers.base.BaseWorker._propose_crashed_state``;
tests/integration/test_crash_recovery.py (``test_a_crash_is_reported_once``) fails if a Prefect
upgrade moves it.
"""

from __future__ import annotations

import runpy
import sys
from typing import Any


def report_each_crash_once() -> None:
    """Patch BaseWorker so a crash already recorded since the worker picked the run up is not
    proposed again (idempotent)."""
    from prefect.workers.base import BaseWorker

    original = BaseWorker._propose_crashed_state
    if getattr(original, "_vtp_once", False):
        return

    async def _propose_crashed_state(self: Any, flow_run: Any, message: str, client: Any = None) -> None:
        client = client or self.client
        picked_up = getattr(getattr(flow_run, "state", None), "timestamp", None)
        if picked_up is not None:
            try:
                history = await client.read_flow_run_states(flow_run.id)
            except Exception:  # noqa: BLE001 - cannot tell: report, as Prefect would
                history = []
            if any(s.is_crashed() and s.timestamp > picked_up for s in history):
                self.get_flow_run_logger(flow_run).info(
                    "flow run %s: its crash was already reported; not reporting it again (%s)", flow_run.id, message)
                return
        await original(self, flow_run, message, client=client)

    _propose_crashed_state._vtp_once = True  # type: ignore[attr-defined]
    BaseWorker._propose_crashed_state = _propose_crashed_state  # type: ignore[method-assign]


def main() -> None:
    report_each_crash_once()
    sys.argv = ["prefect", *sys.argv[1:]]
    runpy.run_module("prefect", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
