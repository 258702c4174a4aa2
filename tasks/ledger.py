"""Reporting a finished run to the vtp API's ledger (``POST /api/runs/register``).

For flows that ran where the API's Prefect server cannot see them (``vtp train --local`` with a
temporary Prefect server, python ``train_flow`` without a stack); runs on the API's own Prefect
server are adopted by the API itself (api/ledger.py) and need not call this. Authenticated with a
person's API token. Never raises on network trouble: a run's outcome must not depend on whether
the API happens to be up.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from typing import Any

import httpx

log = logging.getLogger("vtp.ledger")
TIMEOUT_S = 5.0
STATES = ("queued", "pending", "running", "completed", "failed", "cancelled", "crashed")


def registration(summary: Mapping[str, Any], spec: Mapping[str, Any], *,
                 prefect_flow_run_id: str | None = None) -> dict[str, Any]:
    """The request body for a run summary (as tasks/train_steps.make_summary writes it: ``run_id``,
    ``state``, ``metrics``, ``checkpoint_uri``, ``epochs_completed``, optionally ``error``).
    Non-finite and non-numeric metric values are left out (JSON cannot carry NaN)."""
    metrics = {str(k): float(v) for k, v in (summary.get("metrics") or {}).items()
               if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)}
    state = str(summary.get("state") or "completed")
    body: dict[str, Any] = {
        "run_id": str(summary["run_id"]),
        "spec": dict(spec),
        "state": state if state in STATES else "failed",
        "final_metrics": metrics or None,
        "checkpoint_uri": summary.get("checkpoint_uri"),
        "epochs_done": int(summary.get("epochs_completed") or 0),
    }
    if summary.get("error"):
        body["error"] = str(summary["error"])[:20_000]
    if prefect_flow_run_id:
        body["prefect_flow_run_id"] = str(prefect_flow_run_id)
    return body


def register_run(api_url: str, api_token: str, summary: Mapping[str, Any], spec: Mapping[str, Any], *,
                 prefect_flow_run_id: str | None = None, timeout_s: float = TIMEOUT_S) -> bool:
    """Record the run of ``summary`` (with its ``spec``, a TrainSpec as JSON) in the API at
    ``api_url``; True when the API has it (201 stored now, 200 known already).

    Never raises for network errors, timeouts (``timeout_s`` for the whole exchange) or refusals
    (401 bad token, 409, 422): each is logged as a warning and gives False.
    """
    try:
        body = registration(summary, spec, prefect_flow_run_id=prefect_flow_run_id)
    except (KeyError, TypeError, ValueError) as e:
        log.warning("run not registered with the vtp API: the summary is incomplete (%s)", e)
        return False
    url = f"{api_url.rstrip('/')}/api/runs/register"
    try:
        response = httpx.post(url, json=body, headers={"Authorization": f"Bearer {api_token}"},
                              timeout=httpx.Timeout(timeout_s))
    except httpx.HTTPError as e:
        log.warning("run %s not registered with the vtp API at %s: %s", body["run_id"], api_url, e)
        return False
    if response.status_code in (200, 201):
        return True
    try:
        detail = response.json().get("detail")
    except ValueError:
        detail = response.text[:500]
    log.warning("run %s not registered with the vtp API at %s (HTTP %d): %s", body["run_id"], api_url,
                response.status_code, detail)
    return False
