"""Submitting a run to its deployment and following it: state, epoch lines, final summary."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any
from uuid import UUID

from core.errors import VtpError
from core.settings import Settings
from core.spec import TrainSpec

TERMINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}
LOG_SETTLE_S = 1.5
LOG_SETTLE_MAX_S = 10.0
VTP_PREFIXES = ("run ", "dataset ", "epoch ", "done:", "pretrained", "training from scratch")


def deployment_name(spec: TrainSpec) -> str:
    return f"train/train-{spec.framework}"


def submit(spec: TrainSpec, *, idempotency_key: str | None = None, run_id: str | None = None) -> UUID:
    """Create a flow run of the spec's deployment; returns the flow-run id (also the run id, unless
    ``run_id`` names an earlier run this one goes on with: it resumes from that run's checkpoint)."""
    from prefect.deployments import run_deployment
    from prefect.exceptions import ObjectNotFound

    from core.prefect_setup import prefect_api

    try:
        with prefect_api():
            parameters: dict[str, Any] = {"spec": spec.model_dump(mode="json")}
            if run_id:
                parameters["run_id"] = run_id
            fr = run_deployment(deployment_name(spec), parameters=parameters,
                                timeout=0, as_subflow=False, idempotency_key=idempotency_key)
    except ObjectNotFound:
        raise VtpError(f"deployment {deployment_name(spec)} does not exist: start the stack with `vtp up`, "
                       "or use `vtp train --local` to train without it") from None
    return fr.id


def failure_message(state: Any) -> str:
    """The person-readable reason of a failed run (the exception's own message)."""
    message = state.message or state.name
    try:
        exc = state.result(raise_on_failure=False)
        if isinstance(exc, BaseException):
            return f"{type(exc).__name__}: {exc}" if not isinstance(exc, VtpError) else str(exc)
    except Exception:  # result not retrievable from here (other machine): the state message has it
        pass
    return message


def follow(flow_run_id: UUID, *, echo: Callable[[str], None] = print, verbose: bool = False,
           poll: float = 0.5, timeout: float | None = None) -> Any:
    """Print the run's state changes and epoch lines until it ends; return the final state."""
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
    from prefect.client.schemas.sorting import LogSort

    from core.prefect_setup import prefect_client

    seen_logs = 0
    last_state = None
    ended_at = None  # logs travel in background batches: after the end state, read until they settle
    deadline = time.monotonic() + timeout if timeout else None
    with prefect_client() as client:
        while True:
            fr = client.read_flow_run(flow_run_id)
            state = fr.state
            if state and state.type.value != last_state:
                last_state = state.type.value
                echo(f"[{state.name.lower()}] {fr.name}")
            logs = client.read_logs(LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])),
                                    offset=seen_logs, sort=LogSort.TIMESTAMP_ASC, limit=200)
            for log in logs:
                if verbose:
                    echo(f"  {log.message}")
                elif log.message.startswith(VTP_PREFIXES) or 30 <= log.level < 40:
                    echo(f"  {log.message.splitlines()[0]}")  # the failure itself is printed at the end
            seen_logs += len(logs)
            if state and state.type.value in TERMINAL:
                ended_at = ended_at or time.monotonic()
                settled = not logs and time.monotonic() - ended_at > LOG_SETTLE_S
                if settled or time.monotonic() - ended_at > LOG_SETTLE_MAX_S:
                    return state
            if deadline and time.monotonic() > deadline:
                raise VtpError(f"run {flow_run_id} did not finish within {timeout:.0f}s; it goes on: see `vtp runs`")
            time.sleep(poll)


def read_summary(settings: Settings, run_id: str) -> dict[str, Any] | None:
    """The run's summary.json, once its outputs are complete (manifest present)."""
    from tasks.storage import MANIFEST, Storage

    storage = Storage(settings=settings)
    if not storage.exists("runs", run_id, MANIFEST):
        return None
    return storage.read_json("runs", run_id, "summary.json")


def recent_runs(limit: int = 20) -> list[Any]:
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName
    from prefect.client.schemas.sorting import FlowRunSort

    from core.prefect_setup import prefect_client

    with prefect_client() as client:
        return client.read_flow_runs(flow_filter=FlowFilter(name=FlowFilterName(any_=["train"])),
                                     sort=FlowRunSort.START_TIME_DESC, limit=limit)
