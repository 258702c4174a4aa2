"""One ledger: every run of the ``train`` flow is a row of the API's database (spec, state, metrics,
checkpoint), whoever started it.

Runs started through the API (REST, chat, UI) are stored before they are submitted. Every other
way of starting the flow is covered by one of two mechanisms:

* **Pull** (:class:`Reconciler`, a daemon thread of the API process started next to the stale-run
  monitor): every ``RECONCILE_EVERY_S`` it lists the newest flow runs of the ``train`` flow on the
  API's Prefect server (at most ``PASS_LIMIT`` a pass, newest first, from a little before the
  newest expected start time it saw last, so the work per pass stays bounded) and adopts each one
  that no run names (neither as ``prefect_flow_run_id`` nor as run id): its ``spec`` parameter is
  validated with :func:`core.spec.parse_spec` (a flow run whose spec does not validate is skipped
  with a log line), the run id is the flow run's ``run_id`` parameter or else its own id (as
  flows/train.py does), the state is Prefect's mapped through api.run_states, and a finished run
  gets its final metrics, checkpoint and epochs from ``runs/<run_id>/summary.json`` and its
  per-epoch points from ``runs/<run_id>/artifacts/results.csv``. Adopted runs are named like any
  other (``<model>-<dataset>-<n>``) and their Prefect flow run is renamed to match. From then on the
  ordinary Prefect state sync follows them; each pass also refreshes the active runs. This covers
  ``vtp train`` (which submits straight to Prefect), schedules, the Prefect UI ("Run") and python
  ``train_flow`` calls against the stack's server, with no vtp token anywhere. A flow run that
  Prefect runs again after it settled (a manual "Retry" in the Prefect UI) keeps its settled
  state here: settled states are final (api.run_states).
* **Push** (:func:`register`, ``POST /api/runs/register`` with a person's API token): for runs the
  API's Prefect server never sees (``vtp train --local`` with a temporary Prefect server, python
  ``train_flow`` without a stack), the flow reports the run when it ends (client:
  ``tasks.ledger.register_run``). Idempotent on ``run_id``.
* **Storage** (:func:`adopt_from_storage`, every ``STORAGE_EVERY``-th pass): a finished run whose
  report could not reach the API (it was down when a ``--local`` run ended) is found by its outputs
  (``runs/<id>/`` with manifest and summary.json) and registered as its flow would have; so a
  ``--local`` run appears once an API that shares its storage is up.
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from api import crud, prefect_runs, run_states
from api.errors import Unprocessable
from api.models import Run, utcnow
from api.run_states import SETTLED_STATES, TERMINAL_STATES, Actor
from api.runs_service import plain_error
from api.schemas import RunRegister
from core.errors import SpecError, StorageError
from core.settings import Settings
from core.spec import parse_spec

log = logging.getLogger("vtp.api.ledger")

FLOW_NAME = "train"
RECONCILE_EVERY_S = 5.0
PASS_LIMIT = 50
STORAGE_EVERY = 12  # every 12th pass (a minute) also looks in storage for runs that never reported
STORAGE_LIMIT = 100  # unknown run folders read per look
# Flow runs are listed from this long before the newest expected start time seen in the last pass
OVERLAP = timedelta(minutes=2)


# -- push -------------------------------------------------------------------------------------------


def register(session: Session, *, body: RunRegister, settings: Settings | None = None) -> tuple[Run, bool]:
    """Store a run reported by its flow; returns (run, created).

    A run id that exists already is not stored twice: a settled run, or one already in the reported
    state, is returned unchanged; any other is moved to the reported state through api.run_states
    (as the reconciler, which may make every change out of an unsettled state) and takes the
    reported results where it has none.

    Raises:
        SpecError: the spec does not validate (422, the message names the field).
        Unprocessable: the checkpoint URI is not file:// or s3:// (422).
    """
    spec = parse_spec(body.spec)
    if body.checkpoint_uri is not None and not body.checkpoint_uri.startswith(("file://", "s3://")):
        raise Unprocessable(f"checkpoint_uri={body.checkpoint_uri!r} is not a storage URI: use file:///path or "
                            "s3://bucket/key")
    results = {"final_metrics": body.final_metrics, "checkpoint_uri": body.checkpoint_uri,
               "prefect_flow_run_id": body.prefect_flow_run_id}
    error = plain_error(body.error)
    existing = session.get(Run, body.run_id)
    if existing is None:
        now = utcnow()
        try:
            run = crud.create_run(session, spec=spec.model_dump(mode="json"), run_id=body.run_id, origin="register",
                                  state=body.state, epochs_done=body.epochs_done, error=error,
                                  finished=now if body.state in TERMINAL_STATES else None, **results)
        except IntegrityError:  # the same run registered concurrently: that one stands
            existing = session.get(Run, body.run_id)
            if existing is None:
                raise
            return existing, False
        _load_points(session, run, settings)
        return run, True
    if existing.state in SETTLED_STATES or existing.state == body.state:
        return existing, False
    run_states.transition(existing, body.state, by=Actor.RECONCILER, error=error)
    for key, value in results.items():
        if value is not None and getattr(existing, key) is None:
            setattr(existing, key, value)
    existing.epochs_done = max(existing.epochs_done or 0, body.epochs_done)
    session.commit()
    _load_points(session, existing, settings)
    return existing, False


def _load_points(session: Session, run: Run, settings: Settings | None) -> None:
    """A run that reports its end without having posted its epochs (no run token: it was adopted or
    registered) gets them from its stored results.csv, as an adopted finished run does."""
    if settings is None or run.state != "completed" or crud.list_metrics(session, run_id=run.id):
        return
    try:
        epochs = prefect_runs.stored_epoch_metrics(run.id, settings)
    except (StorageError, OSError) as e:
        log.warning("epochs of run %s not read from storage (%s)", run.id, e)
        return
    for epoch, values in epochs.items():
        crud.record_metrics(session, run_id=run.id, epoch=epoch, metrics=values, commit=False)
    session.commit()


# -- pull -------------------------------------------------------------------------------------------


def train_flow_runs(settings: Settings, *, since: datetime | None, limit: int = PASS_LIMIT) -> list[Any] | None:
    """The newest flow runs of the ``train`` flow due by now (expected start after ``since`` minus
    OVERLAP when given), newest first, at most ``limit``; None when Prefect cannot be reached."""
    from prefect.client.schemas.filters import (
        FlowFilter,
        FlowFilterName,
        FlowRunFilter,
        FlowRunFilterExpectedStartTime,
    )
    from prefect.client.schemas.sorting import FlowRunSort

    if not prefect_runs.reachable(settings):
        return None
    window = FlowRunFilterExpectedStartTime(before_=utcnow(), after_=since - OVERLAP if since else None)
    try:
        with prefect_runs._client(settings) as client:
            return client.read_flow_runs(flow_filter=FlowFilter(name=FlowFilterName(any_=[FLOW_NAME])),
                                         flow_run_filter=FlowRunFilter(expected_start_time=window),
                                         sort=FlowRunSort.EXPECTED_START_TIME_DESC, limit=limit)
    except prefect_runs.UNREACHABLE as e:
        log.warning("runs started outside the API not looked for: Prefect at %s is unreachable (%s)",
                    settings.prefect_api_url, e)
        return None


def adopt(session: Session, flow_run: Any, *, settings: Settings) -> Run | None:
    """A Run row for a flow run of ``train`` that the API did not start; None when it is skipped
    (its spec does not validate, or its run id belongs to a run that another flow run executes)."""
    params = flow_run.parameters or {}
    raw = params.get("spec")
    try:
        spec = parse_spec(dict(raw) if isinstance(raw, dict) else {})
    except SpecError as e:
        log.warning("flow run %s (%s) of %s is not in the ledger: its spec does not validate: %s",
                    flow_run.id, flow_run.name, FLOW_NAME, str(e).replace("\n", "; "))
        return None
    run_id = str(params.get("run_id") or flow_run.id)[:36]
    existing = session.get(Run, run_id)
    if existing is not None:  # e.g. `vtp train --resume RUN`: the run goes on in a new flow run
        if existing.prefect_flow_run_id is None:
            existing.prefect_flow_run_id = str(flow_run.id)
            session.commit()
        else:
            log.info("flow run %s goes on with run %s (executed by flow run %s); not adopted as a new run",
                     flow_run.id, run_id, existing.prefect_flow_run_id)
        return None
    state = _adopted_state(flow_run)
    prefect_state = flow_run.state
    fields: dict[str, Any] = {
        "prefect_flow_run_id": str(flow_run.id),
        "created": flow_run.created or flow_run.expected_start_time or utcnow(),
        "started": flow_run.start_time,
        "attempt": int(flow_run.run_count or 0),
    }
    if state in TERMINAL_STATES:
        fields["finished"] = flow_run.end_time or utcnow()
    if state in ("failed", "crashed") and prefect_state is not None:
        fields["error"] = prefect_state.message or f"the flow run {prefect_state.name.lower()}"
    try:
        run = crud.create_run(session, spec=spec.model_dump(mode="json"), run_id=run_id, origin="prefect",
                              state=state, **fields)
    except IntegrityError:  # another API process adopted it first
        return None
    if state == "completed":
        _load_results(session, run, settings)
    _rename_flow_run(flow_run, run.name, settings)
    log.info("adopted flow run %s (%s) as run %s, %s", flow_run.id, flow_run.name, run.name, state)
    return run


def _adopted_state(flow_run: Any) -> str:
    if flow_run.state is None:
        return "queued"
    return prefect_runs.STATE_MAP.get(flow_run.state.type.value) or "running"  # CANCELLING: still running


def _load_results(session: Session, run: Run, settings: Settings) -> None:
    try:
        crud.update_run(session, run=run, commit=False, **prefect_runs.summary_fields(run, settings))
        epochs = prefect_runs.stored_epoch_metrics(run.id, settings)
        for epoch, values in epochs.items():
            crud.record_metrics(session, run_id=run.id, epoch=epoch, metrics=values, commit=False)
        run.epochs_done = max(run.epochs_done or 0, max(epochs, default=0))
    except (StorageError, OSError) as e:
        log.warning("results of run %s not read from storage (%s)", run.id, e)
    session.commit()


def _rename_flow_run(flow_run: Any, name: str | None, settings: Settings) -> None:
    """The Prefect flow run takes the run's name too (best effort: Prefect may be gone by now)."""
    if not name or flow_run.name == name:
        return
    try:
        with prefect_runs._client(settings) as client:
            client.update_flow_run(UUID(str(flow_run.id)), name=name)
    except prefect_runs.UNREACHABLE as e:
        log.info("flow run %s keeps its name %s (%s)", flow_run.id, flow_run.name, e)


def reconcile(session: Session, settings: Settings, *, since: datetime | None = None,
              limit: int = PASS_LIMIT) -> tuple[list[str], datetime | None]:
    """One pass: adopt the flow runs of ``train`` that no run names, then refresh the active runs
    from Prefect. Returns (ids of the runs adopted, the newest expected start time seen, for the
    next pass's ``since``); nothing changes when Prefect cannot be reached."""
    found = train_flow_runs(settings, since=since, limit=limit)
    if found is None:
        return [], since
    ids = [str(fr.id) for fr in found]
    known = set(session.scalars(select(Run.prefect_flow_run_id).where(Run.prefect_flow_run_id.in_(ids))))
    known |= set(session.scalars(select(Run.id).where(Run.id.in_(ids))))
    adopted = []
    for flow_run in reversed(found):  # oldest first: names count up in the order the runs started
        if str(flow_run.id) not in known and (run := adopt(session, flow_run, settings=settings)) is not None:
            adopted.append(run.id)
    prefect_runs.sync_runs(session, crud.active_runs(session, limit=limit), settings=settings)
    seen = [fr.expected_start_time for fr in found if fr.expected_start_time is not None]
    newest = max(seen, default=None)
    return adopted, max(newest, since) if newest and since else (newest or since)


def adopt_from_storage(session: Session, settings: Settings, *, skip: set[str] | None = None,
                       limit: int = STORAGE_LIMIT) -> list[str]:
    """Finished runs whose outputs are in storage (``runs/<id>/`` with its manifest and summary.json)
    but in no row: a ``vtp train --local`` or python run whose report could not reach the API when
    it ended (the API was down, or on no machine with a token). They are registered as the flow
    would have (:func:`register`). Bounded: at most ``limit`` unknown folders are read per call;
    ``skip`` (kept by the caller) collects folders that hold no finished run, so they are read once."""
    from pydantic import ValidationError

    from core.spec import RUN_ID_RE
    from tasks.ledger import registration
    from tasks.storage import Storage, read_summary

    skip = skip if skip is not None else set()
    try:
        ids = [name for name in Storage(settings=settings).folders("runs") if RUN_ID_RE.match(name)]
    except (StorageError, OSError) as e:
        log.info("storage not listed for unreported runs: %s", e)
        return []
    known: set[str] = set()
    for start in range(0, len(ids), 500):
        chunk = ids[start:start + 500]
        known |= set(session.scalars(select(Run.id).where(Run.id.in_(chunk))))
    adopted = []
    for run_id in [i for i in ids if i not in known and i not in skip][:limit]:
        try:
            summary = read_summary(settings, run_id)
        except (StorageError, OSError, ValueError):
            summary = None
        if not isinstance(summary, dict) or not isinstance(summary.get("spec"), dict):
            skip.add(run_id)  # a resume checkpoint of an unfinished run, or a run still uploading
            continue
        try:
            body = RunRegister.model_validate(registration({**summary, "run_id": run_id}, summary["spec"]))
            register(session, body=body, settings=settings)
        except (ValidationError, SpecError, Unprocessable) as e:
            log.warning("run %s in storage is not adopted: %s", run_id, str(e).splitlines()[0][:200])
            skip.add(run_id)
            continue
        log.info("run %s adopted from storage (it finished without reaching the API)", run_id)
        adopted.append(run_id)
    return adopted


class Reconciler:
    """Runs :func:`reconcile` every ``every_s`` seconds in a daemon thread of the API process,
    remembering the newest expected start time seen between passes."""

    def __init__(self, sessions: sessionmaker[Session], settings: Settings, *,
                 every_s: float | None = None, limit: int = PASS_LIMIT) -> None:
        self.sessions, self.settings, self.limit = sessions, settings, limit
        self.every_s = every_s or RECONCILE_EVERY_S
        self.since: datetime | None = None
        self._passes = 0
        self._no_run: set[str] = set()  # storage folders that hold no finished run (read once)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="vtp-ledger", daemon=True)

    def start(self) -> Reconciler:
        self._thread.start()
        return self

    def run_once(self) -> list[str]:
        with self.sessions() as session:
            adopted, self.since = reconcile(session, self.settings, since=self.since, limit=self.limit)
            if self._passes % STORAGE_EVERY == 0:
                adopted += adopt_from_storage(session, self.settings, skip=self._no_run)
        self._passes += 1
        return adopted

    def _loop(self) -> None:
        while not self._stop.wait(self.every_s):
            try:
                self.run_once()
            except Exception:  # noqa: BLE001 - a database or Prefect hiccup must not end the reconciler
                log.exception("ledger pass failed; trying again in %.0f s", self.every_s)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
