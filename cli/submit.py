"""Submitting a run to its deployment and following it: state, epoch lines, final summary."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any
from uuid import UUID

from core.errors import VtpError
from core.prefect_api import deployment_name, prefect_api, prefect_client
from core.settings import Settings
from core.spec import TrainSpec

TERMINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}
LOG_SETTLE_S = 1.5
LOG_SETTLE_MAX_S = 10.0
VTP_PREFIXES = ("run ", "dataset ", "epoch ", "done:", "pretrained", "training from scratch")


def submit(spec: TrainSpec, *, idempotency_key: str | None = None, run_id: str | None = None) -> UUID:
    """Create a flow run of the spec's deployment; returns the flow-run id (also the run id, unless
    ``run_id`` names an earlier run this one goes on with: it resumes from that run's checkpoint)."""
    from prefect.deployments import run_deployment
    from prefect.exceptions import ObjectNotFound

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


def submit_via_api(spec: TrainSpec, settings: Settings, *, echo: Callable[[str], None] | None = None
                   ) -> dict[str, Any] | None:
    """``POST /api/runs`` on the vtp API at ``settings.api_url`` with this machine's API token
    (core.settings.saved_api_token); the run as the API returns it (``id``, ``name``,
    ``prefect_flow_run_id``), or None when there is no token or no API answering — the caller then
    submits to Prefect itself. Raises VtpError when the API answers and refuses the run (its message)."""
    import httpx

    from core.settings import saved_api_token

    token = saved_api_token(settings)
    if not token:
        return None
    headers = {"Authorization": f"Bearer {token}"}
    try:
        r = httpx.post(f"{settings.api_url}/api/runs", json={"spec": spec.model_dump(mode="json")}, headers=headers,
                       timeout=httpx.Timeout(30.0, connect=3.0))
    except httpx.HTTPError as e:
        (echo or (lambda _: None))(f"the vtp API at {settings.api_url} did not answer ({type(e).__name__}): "
                                   "submitting to Prefect directly; the API lists the run once it is up")
        return None
    if r.status_code == 401:
        (echo or (lambda _: None))(f"the vtp API at {settings.api_url} refused this machine's token: "
                                   "submitting to Prefect directly")
        return None
    try:
        body = r.json()
    except ValueError:
        body = {}
    if r.status_code not in (200, 201) or not body.get("prefect_flow_run_id"):
        detail = body.get("detail") if isinstance(body, dict) else None
        raise VtpError(f"the vtp API did not start the run (HTTP {r.status_code}): {detail or r.text[:300]}")
    return body


def api_call(settings: Settings, method: str, path: str, **kwargs: Any) -> Any:
    """One call to the vtp API with this machine's token; its JSON. Raises VtpError naming what to
    do when there is no token, no API, or the API refuses (its own message)."""
    import httpx

    from core.settings import saved_api_token

    token = saved_api_token(settings)
    if not token:
        raise VtpError(f"no API token: start the stack with `vtp up` (it saves one to {settings.home}/api_token) "
                       "or set VTP_API_TOKEN")
    try:
        r = httpx.request(method, f"{settings.api_url}{path}", headers={"Authorization": f"Bearer {token}"},
                          timeout=httpx.Timeout(30.0, connect=3.0), **kwargs)
    except httpx.HTTPError as e:
        raise VtpError(f"the vtp API at {settings.api_url} did not answer ({type(e).__name__}): start it with "
                       "`vtp up`") from None
    try:
        body = r.json()
    except ValueError:
        body = None
    if r.status_code >= 400:
        detail = body.get("detail") if isinstance(body, dict) else r.text[:300]
        raise VtpError(f"{detail} (HTTP {r.status_code})")
    return body


def api_runs(settings: Settings, limit: int) -> list[dict[str, Any]] | None:
    """The API's newest ``limit`` runs as `vtp runs` rows, or None when the API cannot be asked."""
    from core.errors import SpecError
    from core.spec import parse_spec

    try:
        items = api_call(settings, "GET", "/api/runs", params={"limit": limit})["items"]
    except (VtpError, KeyError, TypeError):
        return None
    rows = []
    for run in items:
        spec = run.get("spec") or {}
        try:
            metric = parse_spec(dict(spec)).main_metric
        except (SpecError, KeyError, ValueError):
            metric = None
        value = (run.get("final_metrics") or {}).get(metric) if metric else None
        started, finished = run.get("started"), run.get("finished")
        duration = None
        if started and finished:
            from datetime import datetime

            duration = round((datetime.fromisoformat(finished) - datetime.fromisoformat(started)).total_seconds(), 1)
        rows.append({"run_id": run["id"], "name": run.get("name"), "flow_run_id": run.get("prefect_flow_run_id"),
                     "state": run["state"], "model": spec.get("model"), "dataset": spec.get("dataset"),
                     "epochs": spec.get("epochs"), "metric": metric if value is not None else None,
                     "value": value if isinstance(value, (int, float)) else None,
                     "started": started, "duration_s": duration, "checkpoint": run.get("checkpoint_uri")})
    return rows


def prefect_runs(settings: Settings, limit: int) -> list[dict[str, Any]]:
    """The Prefect server's newest ``limit`` runs of the train flow as `vtp runs` rows (without the API)."""
    from tasks.storage import read_summary

    rows = []
    for fr in recent_runs(limit):
        spec = (fr.parameters or {}).get("spec") or {}
        # vtp's run id, the one the web app and the API show (runs submitted through the API pass it;
        # a run started by `vtp train` or Python is known by its flow-run id), and where its files are
        run_id = (fr.parameters or {}).get("run_id") or str(fr.id)
        summary = read_summary(settings, run_id) if fr.state and fr.state.is_completed() else None
        metric = summary["main_metric"] if summary else {}
        rows.append({
            "run_id": run_id, "name": None, "flow_run_id": str(fr.id), "state": fr.state.name if fr.state else "?",
            "model": spec.get("model"), "dataset": spec.get("dataset"), "epochs": spec.get("epochs"),
            "metric": metric.get("name"), "value": metric.get("value"),
            "started": fr.start_time.isoformat(timespec="seconds") if fr.start_time else None,
            "duration_s": round(fr.total_run_time.total_seconds(), 1) if fr.total_run_time else None,
            "checkpoint": summary.get("checkpoint_uri") if summary else None,
        })
    return rows


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


def recent_runs(limit: int = 20) -> list[Any]:
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName
    from prefect.client.schemas.sorting import FlowRunSort

    with prefect_client() as client:
        return client.read_flow_runs(flow_filter=FlowFilter(name=FlowFilterName(any_=["train"])),
                                     sort=FlowRunSort.START_TIME_DESC, limit=limit)
