"""Database reads and writes, keyword-only; each write commits. Routes and services call these,
never build queries themselves."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import case, delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from api import run_states
from api.errors import Conflict, NotFound, Unprocessable
from api.models import NAME_MAX, Dataset, MetricPoint, Project, Run, utcnow
from api.run_states import RUN_STATES, SETTLED_STATES, Actor
from tasks.dataset_store import DatasetRecord

# -- projects -----------------------------------------------------------------------------------


def create_project(session: Session, *, name: str, description: str = "") -> Project:
    project = Project(name=name.strip(), description=description)
    session.add(project)
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        raise Conflict(f"a project named {name.strip()!r} exists already: choose another name") from None
    return project


def list_projects(session: Session) -> list[Project]:
    return list(session.scalars(select(Project).order_by(Project.id)))


def get_project(session: Session, *, project_id: int) -> Project:
    project = session.get(Project, project_id)
    if project is None:
        raise NotFound(f"project {project_id} does not exist: list projects with GET /api/projects")
    return project


def check_project(session: Session, *, project_id: int | None) -> None:
    """For request bodies naming a project: an unknown one is a 422, not a 404."""
    if project_id is not None and session.get(Project, project_id) is None:
        raise Unprocessable(f"project_id={project_id} does not exist: create it with POST /api/projects or leave it out")


# -- datasets -----------------------------------------------------------------------------------


def get_dataset_by_name(session: Session, *, name: str) -> Dataset | None:
    return session.scalar(select(Dataset).where(Dataset.name == name))


def get_dataset(session: Session, *, dataset_id: int) -> Dataset:
    row = session.get(Dataset, dataset_id)
    if row is None:
        raise NotFound(f"dataset {dataset_id} does not exist: list datasets with GET /api/datasets")
    return row


def list_datasets(session: Session, *, project_id: int | None = None, limit: int = 100,
                  offset: int = 0) -> tuple[list[Dataset], int]:
    query = select(Dataset)
    if project_id is not None:
        query = query.where(Dataset.project_id == project_id)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = session.scalars(query.order_by(Dataset.name).limit(limit).offset(offset))
    return list(rows), total


def save_dataset(session: Session, *, record: DatasetRecord, report: dict[str, Any] | None = None,
                 project_id: int | None = None) -> Dataset:
    """Insert or update the row mirroring a registry record."""
    row = get_dataset_by_name(session, name=record.name) or Dataset(name=record.name)
    row.uri, row.format, row.task = record.uri, record.format, record.task
    row.classes, row.counts = list(record.classes), dict(record.counts)
    if report is not None:
        row.report = report
    if project_id is not None:
        row.project_id = project_id
    session.add(row)
    session.commit()
    return row


def adopt_registry(session: Session, *, records: Mapping[str, DatasetRecord],
                   reports: Callable[[DatasetRecord], dict[str, Any] | None] | None = None) -> int:
    """Rows for registry entries made outside the API (`vtp datasets add`, `vtp up`'s samples), and
    rows brought up to a newer version imported outside the API (its report from ``reports``)."""
    known = {row.name: row for row in session.scalars(select(Dataset))}
    added = 0
    for name, rec in records.items():
        row = known.get(name)
        if row is None:
            session.add(Dataset(name=name, uri=rec.uri, format=rec.format, task=rec.task,
                                classes=list(rec.classes), counts=dict(rec.counts),
                                report=reports(rec) if reports else None))
            added += 1
        elif row.uri != rec.uri:  # a new version: the row describes the latest
            row.uri, row.format, row.task = rec.uri, rec.format, rec.task
            row.classes, row.counts = list(rec.classes), dict(rec.counts)
            row.report = reports(rec) if reports else None
            added += 1
    if added:
        try:
            session.commit()
        except IntegrityError:  # another request adopted the same entries first: theirs stand
            session.rollback()
    return added


# -- runs ---------------------------------------------------------------------------------------


NAME_BASE_MAX = 60  # <model>-<dataset> is cut here, leaving room for "-<n>" within NAME_MAX
NAME_TRIES = 5


def _slug(text: str) -> str:
    text = text.rstrip("/").rsplit("/", 1)[-1] if "://" in text else text  # a URI: its last segment
    return re.sub(r"-{2,}", "-", re.sub(r"[^a-z0-9.-]+", "-", text.lower())).strip("-.")


def run_name_base(spec: Mapping[str, Any]) -> str:
    """``<model>-<dataset>`` in lower case, characters outside ``[a-z0-9.-]`` replaced by ``-``,
    at most NAME_BASE_MAX characters; a dataset URI, a hub id or a local model folder contributes its
    last path segment (``yolo11n``, ``s3://b/shapes-detect`` -> ``yolo11n-shapes-detect``;
    ``facebook/detr-resnet-50`` -> ``detr-resnet-50``; ``/models/vit`` -> ``vit``)."""
    model = _slug(_last_segment(str(spec.get("model") or "run")))
    dataset = _slug(str(spec.get("dataset") or "data"))
    return f"{model or 'run'}-{dataset or 'data'}"[:NAME_BASE_MAX].rstrip("-.")


def _last_segment(value: str) -> str:
    return value.rstrip("/\\").replace("\\", "/").rsplit("/", 1)[-1] or value


def next_run_name(session: Session, spec: Mapping[str, Any]) -> str:
    """The next free name ``<model>-<dataset>-<n>``: n is one more than the highest n among runs with
    this model and dataset (1 for the first). At most NAME_MAX characters, unique (the column is)."""
    base = run_name_base(spec)
    pattern = re.compile(rf"{re.escape(base)}-(\d{{1,9}})")
    # base has only [a-z0-9.-]: nothing in it is a LIKE wildcard
    taken = [m.group(1) for name in session.scalars(select(Run.name).where(Run.name.like(f"{base}-%")))
             if name and (m := pattern.fullmatch(name))]
    return f"{base}-{max(map(int, taken), default=0) + 1}"[:NAME_MAX]  # base is short enough: never cut


def create_run(session: Session, *, spec: dict[str, Any], project_id: int | None = None,
               client_request_id: str | None = None, retry_of: str | None = None, run_id: str | None = None,
               origin: str = "api", state: str = "queued", **fields: Any) -> Run:
    """Store a run (by default queued, from the API) under the next free name (:func:`next_run_name`).

    ``run_id`` defaults to a new UUID; ``fields`` are other columns (the ledger's adopted runs bring
    their flow run, times and results). A ``client_request_id`` or ``run_id`` that exists already
    raises IntegrityError (after rollback), so the caller can return the existing run; two runs
    named at the same moment are told apart by trying the next name."""
    if state not in RUN_STATES:
        raise ValueError(f"{state!r} is not a run state")
    for try_no in range(NAME_TRIES):
        run = Run(spec=spec, project_id=project_id, client_request_id=client_request_id, retry_of=retry_of,
                  state=state, cancel_requested=False, origin=origin, name=next_run_name(session, spec), **fields)
        if run_id is not None:
            run.id = run_id
        session.add(run)
        try:
            session.commit()
            return run
        except IntegrityError:
            session.rollback()
            if (try_no == NAME_TRIES - 1
                    or (client_request_id is not None and get_run_by_client_request_id(
                        session, client_request_id=client_request_id) is not None)
                    or (run_id is not None and session.get(Run, run_id) is not None)):
                raise
    raise AssertionError("unreachable")


def get_run(session: Session, *, run_id: str) -> Run:
    run = session.get(Run, run_id)
    if run is None:
        raise NotFound(f"run {run_id} does not exist: list runs with GET /api/runs")
    return run


def find_run(session: Session, *, key: str) -> Run:
    """A run by its id or its name (``yolo11n-shapes-detect-7``); 404 when neither matches."""
    run = session.get(Run, key) or session.scalar(select(Run).where(Run.name == key))
    if run is None:
        raise NotFound(f"no run has the id or name {key!r}: list runs with GET /api/runs")
    return run


def get_run_by_client_request_id(session: Session, *, client_request_id: str) -> Run | None:
    return session.scalar(select(Run).where(Run.client_request_id == client_request_id))


def list_runs(session: Session, *, state: str | None = None, project_id: int | None = None,
              limit: int = 50, offset: int = 0) -> tuple[list[Run], int]:
    query = select(Run)
    if state is not None:
        query = query.where(Run.state == state)
    if project_id is not None:
        query = query.where(Run.project_id == project_id)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = session.scalars(query.order_by(Run.created.desc(), Run.id).limit(limit).offset(offset))
    return list(rows), total


def active_runs(session: Session, *, limit: int = 500) -> list[Run]:
    """Runs whose state may still change in Prefect (newest first)."""
    query = (select(Run).where(Run.state.in_(sorted(run_states.ACTIVE_STATES)), Run.prefect_flow_run_id.is_not(None))
             .order_by(Run.created.desc()).limit(limit))
    return list(session.scalars(query))


def update_run(session: Session, *, run: Run, commit: bool = True, **fields: Any) -> Run:
    for key, value in fields.items():
        if not hasattr(Run, key):
            raise AttributeError(f"Run has no column {key!r}")
        setattr(run, key, value)
    if commit:
        session.commit()
    return run


MAX_EVENTS = 200


def add_run_event(session: Session, *, run: Run, kind: str, message: str, commit: bool = True,
                  **data: Any) -> Run:
    """Append to the run's history (newest last, the last MAX_EVENTS kept)."""
    event = {"time": utcnow().isoformat(), "kind": kind, "message": message,
             **{k: v for k, v in data.items() if v is not None}}
    run.events = [*(run.events or []), event][-MAX_EVENTS:]  # a new list, so SQLAlchemy sees the change
    if commit:
        session.commit()
    return run


class LiveRun(NamedTuple):
    state: str
    just_started: bool
    cancel_requested: bool


def touch_live_run(session: Session, *, run_id: str, epoch: int | None = None,
                   attempt: int | None = None) -> LiveRun | None:
    """One statement for a trainer's sign of life: last heartbeat now, epochs_done raised to
    ``epoch``, a queued or pending run turned running. Returns what the callback needs, or None when
    no live run has this id (unknown, already ended, or ``attempt`` is fenced off: see
    :func:`attempt_superseded`). Not committed: the caller commits once."""
    now = utcnow()
    values: dict[str, Any] = {
        "last_heartbeat": now,
        "state": run_states.to_running_sql(Actor.TRAINER, Run.state),
        "started": func.coalesce(Run.started, now),
        "finished": case((Run.state == "crashed", None), else_=Run.finished),  # as run_states.transition does
        "error": case((Run.state == "crashed", None), else_=Run.error),
    }
    if epoch is not None:
        values["epochs_done"] = case((Run.epochs_done < epoch, epoch), else_=Run.epochs_done)
    live = [Run.id == run_id, Run.state.not_in(sorted(SETTLED_STATES))]
    if attempt is not None:
        values["attempt"] = attempt
        live += [Run.attempt <= attempt, ~((Run.state == "crashed") & (Run.attempt == attempt))]
    stmt = (update(Run).where(*live).values(**values)
            .returning(Run.state, Run.started, Run.cancel_requested).execution_options(synchronize_session=False))
    row = session.execute(stmt).first()
    if row is None:
        return None
    return LiveRun(row.state, row.started == now, bool(row.cancel_requested))  # started == now: set just now


def attempt_superseded(run: Run, attempt: int | None) -> bool:
    """True when callbacks of ``attempt`` must be refused: a newer attempt of the run has reported,
    or this attempt was declared crashed (stale, or Prefect crashed it) and a retry will replace it.
    Two attempts of one run never both report, publish or train on."""
    if attempt is None:
        return False
    return attempt < (run.attempt or 0) or (run.state == "crashed" and attempt == run.attempt)


def finish_run(session: Session, *, run: Run, state: str, by: Actor, error: str | None = None,
               when: datetime | None = None, commit: bool = True) -> Run:
    """End ``run`` in ``state`` through :func:`api.run_states.transition` (refused: IllegalTransition,
    409; a repeat changes nothing) and commit."""
    run_states.transition(run, state, by=by, error=error, when=when)
    if commit:
        session.commit()
    return run


def runs_by_state(session: Session) -> dict[str, int]:
    counts = dict.fromkeys(RUN_STATES, 0)
    for state, n in session.execute(select(Run.state, func.count()).group_by(Run.state)):
        counts[state] = n
    return counts


# -- metrics ------------------------------------------------------------------------------------


def record_metrics(session: Session, *, run_id: str, epoch: int, metrics: Mapping[str, float],
                   commit: bool = True) -> int:
    """Store one epoch's metrics; idempotent per (run_id, epoch, name): a repeated point replaces
    the earlier value instead of adding a row, so a retried callback is harmless."""
    if not metrics:
        return 0
    rows = [{"run_id": run_id, "epoch": int(epoch), "name": str(k), "value": float(v), "created": utcnow()}
            for k, v in metrics.items()]
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    elif dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert
    else:  # portable fallback: delete then insert, in one transaction
        names = [r["name"] for r in rows]
        session.execute(delete(MetricPoint).where(MetricPoint.run_id == run_id, MetricPoint.epoch == epoch,
                                                  MetricPoint.name.in_(names)))
        session.execute(MetricPoint.__table__.insert(), rows)
        if commit:
            session.commit()
        return len(rows)
    stmt = insert(MetricPoint).values(rows)
    stmt = stmt.on_conflict_do_update(index_elements=["run_id", "epoch", "name"],
                                      set_={"value": stmt.excluded.value, "created": stmt.excluded.created})
    session.execute(stmt)
    if commit:
        session.commit()
    return len(rows)


def record_metric(session: Session, *, run_id: str, epoch: int, name: str, value: float) -> None:
    record_metrics(session, run_id=run_id, epoch=epoch, metrics={name: value})


def has_metrics(session: Session, *, run_id: str) -> bool:
    return session.scalar(select(MetricPoint.id).where(MetricPoint.run_id == run_id).limit(1)) is not None


def list_metrics(session: Session, *, run_id: str, after_epoch: int = 0) -> list[MetricPoint]:
    query = (select(MetricPoint).where(MetricPoint.run_id == run_id, MetricPoint.epoch > after_epoch)
             .order_by(MetricPoint.epoch, MetricPoint.name))
    return list(session.scalars(query))
