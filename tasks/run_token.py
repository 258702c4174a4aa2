"""How a training flow gets its run token: never from Prefect's parameters.

The API passes a *claim ticket* as the flow run's ``run_token`` parameter (visible to whoever can
read Prefect; useless by itself). Each attempt exchanges it once at
``POST /api/internal/runs/{run_id}/token`` for a run token, with its attempt number (Prefect's
run_count) and flow-run id; the API checks both against Prefect. Anything that is not a ticket (a
run token from a Kubernetes Secret as ``VTP_RUN_TOKEN``, or one a test passes) is used as it is.

The exchange is retried only where it surely did not reach the API (connection refused, 5xx, 429):
a second exchange of one attempt fails the run, because it is what a stolen ticket looks like.
"""

from __future__ import annotations

import logging
import time

import httpx

from core.contracts import is_run_ticket

log = logging.getLogger("vtp.callbacks")


class RunAlreadyEnded(Exception):
    """The API says the run ended (cancelled, failed or completed) before this attempt began: a late
    retry of a run that is over. The attempt trains and publishes nothing."""
CLAIM_TIMEOUT_S = 120.0


def _flow_run() -> tuple[int, str | None]:
    try:
        from prefect.runtime import flow_run

        flow_run_id = flow_run.get_id()
        return max(1, int(flow_run.run_count or 1)), str(flow_run_id) if flow_run_id else None
    except Exception:  # noqa: BLE001 - outside a flow run
        return 1, None


def obtain_run_token(api_url: str | None, run_id: str, given: str | None, *,
                     timeout_s: float = CLAIM_TIMEOUT_S) -> str | None:
    """The run token for this attempt: ``given`` itself unless it is a claim ticket, which is
    exchanged with the API; None when there is none to be had (the run then trains without callbacks)."""
    if not given or not is_run_ticket(given):
        return given or None
    attempt, flow_run_id = _flow_run()
    if not api_url or not flow_run_id:
        log.warning("run %s: a claim ticket but no API URL or flow run to exchange it with; no callbacks", run_id)
        return None
    url = f"{api_url.rstrip('/')}/api/internal/runs/{run_id}/token"
    deadline = time.monotonic() + timeout_s
    delay = 0.5
    with httpx.Client(timeout=60.0) as client:  # a busy API answers late; a lost answer costs the callbacks
        while True:
            try:
                response = client.post(url, json={"attempt": attempt, "flow_run_id": flow_run_id},
                                       headers={"Authorization": f"Bearer {given}"})
            except (httpx.ConnectError, httpx.ConnectTimeout) as e:  # never reached the API: safe to retry
                reason = str(e)
            except httpx.HTTPError as e:  # may have reached it: a second claim would fail the run
                log.error("run %s: exchanging the claim ticket failed (%s); no callbacks for this attempt", run_id, e)
                return None
            else:
                if response.status_code == 200:
                    return response.json()["token"]
                if response.status_code == 409 and "already ended" in response.text:
                    raise RunAlreadyEnded(f"run {run_id} already ended in the API (e.g. cancelled) before this "
                                          f"attempt started: {response.json().get('detail', '')}")
                if response.status_code < 500 and response.status_code != 429:
                    log.error("run %s: the API refused the claim ticket (HTTP %d: %s); no callbacks for this attempt",
                              run_id, response.status_code, response.text[:300])
                    return None
                reason = f"HTTP {response.status_code}"
            if time.monotonic() + delay > deadline:
                log.error("run %s: could not exchange the claim ticket (%s); no callbacks for this attempt", run_id, reason)
                return None
            time.sleep(delay)
            delay = min(delay * 2, 5.0)
