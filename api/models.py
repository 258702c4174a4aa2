"""The API's tables (SQLAlchemy 2, typed). The schema itself is owned by the Alembic migrations in
``api/migrations``; these classes must match them (tests/api/test_migrations.py checks)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    event,
    false,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from api.run_states import RUN_STATES, TERMINAL_STATES

RUN_ORIGINS: tuple[str, ...] = ("api", "prefect", "register")
CHAT_ROLES: tuple[str, ...] = ("system", "user", "assistant")

# Named constraints, so migrations can drop and alter them by name on every database.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_id() -> str:
    return str(uuid.uuid4())


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every database (SQLite stores them naive)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTCDateTime column; use datetime.now(UTC)")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {datetime: UTCDateTime, dict[str, Any]: JSON, list[str]: JSON}


class Project(Base):
    __tablename__ = "projects"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    created: Mapped[datetime] = mapped_column(default=utcnow)


class Dataset(Base):
    """A registered dataset. ``datasets/index.json`` in storage is what flows read; this row
    mirrors it and adds what only the API keeps (validation report, project)."""

    __tablename__ = "datasets"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    uri: Mapped[str] = mapped_column(Text)
    format: Mapped[str | None] = mapped_column(String(32))
    task: Mapped[str | None] = mapped_column(String(16))
    classes: Mapped[list[str]] = mapped_column(JSON, default=list)
    counts: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    report: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    project_id: Mapped[int | None] = mapped_column(ForeignKey("projects.id", ondelete="SET NULL"), index=True)
    created: Mapped[datetime] = mapped_column(default=utcnow)


NAME_MAX = 80


class Run(Base):
    """One training run, however it was started. ``id`` is vtp's run id (storage ``runs/<id>/``,
    the run token's subject); the Prefect flow run that executes it has its own id, except for runs
    started outside the API, whose run id is their flow-run id. ``name`` is the readable unique
    name (``yolo11n-shapes-detect-7``, see crud.run_name); ``origin`` says where it was started:
    ``api`` (REST, chat, UI), ``prefect`` (adopted from Prefect by the ledger: `vtp train`,
    schedules, the Prefect UI) or ``register`` (reported by its flow, POST /api/runs/register).
    State changes go through api.run_states."""

    __tablename__ = "runs"
    __table_args__ = (CheckConstraint(f"state IN {RUN_STATES!r}", name="state"),
                      CheckConstraint(f"origin IN {RUN_ORIGINS!r}", name="origin"))

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    name: Mapped[str | None] = mapped_column(String(NAME_MAX), unique=True)
    origin: Mapped[str] = mapped_column(String(16), default="api", server_default="api")
    project_id: Mapped[int | None] = mapped_column(ForeignKey("projects.id", ondelete="SET NULL"), index=True)
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    state: Mapped[str] = mapped_column(String(16), default="queued", index=True)
    prefect_flow_run_id: Mapped[str | None] = mapped_column(String(36), index=True)
    created: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    started: Mapped[datetime | None]
    finished: Mapped[datetime | None]
    final_metrics: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    checkpoint_uri: Mapped[str | None] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(Text)
    epochs_done: Mapped[int] = mapped_column(Integer, default=0)
    last_heartbeat: Mapped[datetime | None]
    client_request_id: Mapped[str | None] = mapped_column(String(200), unique=True)
    retry_of: Mapped[str | None] = mapped_column(ForeignKey("runs.id", ondelete="SET NULL"))
    # Set by POST /api/runs/{id}/cancel; the heartbeat callback tells the trainer to stop.
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # The run's history beyond its state: [{"time", "kind", "message", ...}] (resumed, stale, retrying).
    events: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON, default=list)
    # The newest attempt (Prefect's run_count: 1, then 2, 3 after crash retries) that reported. Callbacks
    # of an older attempt, or of the attempt the API itself declared crashed, are refused (fenced).
    attempt: Mapped[int] = mapped_column(Integer, default=0, server_default="0")

    metrics: Mapped[list[MetricPoint]] = relationship(
        back_populates="run", cascade="all, delete-orphan", passive_deletes=True, order_by="MetricPoint.epoch"
    )

    @property
    def terminal(self) -> bool:
        return self.state in TERMINAL_STATES


class MetricPoint(Base):
    __tablename__ = "metric_points"
    __table_args__ = (UniqueConstraint("run_id", "epoch", "name", name="uq_metric_points_run_epoch_name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    epoch: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(200))
    value: Mapped[float] = mapped_column(Float)
    created: Mapped[datetime] = mapped_column(default=utcnow)

    run: Mapped[Run] = relationship(back_populates="metrics")


class ChatSession(Base):
    __tablename__ = "chat_sessions"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    title: Mapped[str] = mapped_column(String(200), default="")
    project_id: Mapped[int | None] = mapped_column(ForeignKey("projects.id", ondelete="SET NULL"), index=True)
    created: Mapped[datetime] = mapped_column(default=utcnow)

    messages: Mapped[list[ChatMessage]] = relationship(
        back_populates="session", cascade="all, delete-orphan", passive_deletes=True, order_by="ChatMessage.id"
    )


class ChatMessage(Base):
    __tablename__ = "chat_messages"
    __table_args__ = (CheckConstraint(f"role IN {CHAT_ROLES!r}", name="role"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    session_id: Mapped[str] = mapped_column(ForeignKey("chat_sessions.id", ondelete="CASCADE"), index=True)
    role: Mapped[str] = mapped_column(String(16))
    content: Mapped[str] = mapped_column(Text)
    spec: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created: Mapped[datetime] = mapped_column(default=utcnow)

    session: Mapped[ChatSession] = relationship(back_populates="messages")


class ApiToken(Base):
    """A person's API token. Only its sha256 is stored; ``prefix`` lets people tell tokens apart."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16), index=True)
    created: Mapped[datetime] = mapped_column(default=utcnow)
    last_used: Mapped[datetime | None]
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)



class RegisteredModel(Base):
    """A named model of the registry ("forklift-detector"): its versions and aliases (api.registry)."""

    __tablename__ = "registered_models"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    created: Mapped[datetime] = mapped_column(default=utcnow)

    versions: Mapped[list[ModelVersion]] = relationship(
        back_populates="model", cascade="all, delete-orphan", passive_deletes=True, order_by="ModelVersion.version")
    aliases: Mapped[list[ModelAlias]] = relationship(
        back_populates="model", cascade="all, delete-orphan", passive_deletes=True, order_by="ModelAlias.alias")


class ModelVersion(Base):
    """One immutable version of a registered model: the run it came from and a copy of its files
    (``uri``: ``models/<name>/<id>/`` in storage, never written again), with ``record`` holding what
    it was promoted with (run, dataset version, spec, final metrics, the export table, the files'
    sha256). Rows are never updated (a guard below refuses it)."""

    __tablename__ = "model_versions"
    __table_args__ = (UniqueConstraint("model_id", "version", name="uq_model_versions_model_version"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    model_id: Mapped[int] = mapped_column(ForeignKey("registered_models.id", ondelete="CASCADE"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    run_id: Mapped[str | None] = mapped_column(String(36), index=True)  # not a foreign key: the version outlives its run
    format: Mapped[str] = mapped_column(String(32))  # pytorch, or the export format it ships (onnx, openvino, ...)
    uri: Mapped[str] = mapped_column(Text)
    record: Mapped[dict[str, Any]] = mapped_column(JSON)
    created: Mapped[datetime] = mapped_column(default=utcnow)

    model: Mapped[RegisteredModel] = relationship(back_populates="versions")


class ModelAlias(Base):
    """A movable name for one version of a model (``production`` -> v3)."""

    __tablename__ = "model_aliases"
    __table_args__ = (UniqueConstraint("model_id", "alias", name="uq_model_aliases_model_alias"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("registered_models.id", ondelete="CASCADE"), index=True)
    alias: Mapped[str] = mapped_column(String(32))
    version_id: Mapped[str] = mapped_column(ForeignKey("model_versions.id", ondelete="CASCADE"), index=True)
    updated: Mapped[datetime] = mapped_column(default=utcnow)

    model: Mapped[RegisteredModel] = relationship(back_populates="aliases")
    version: Mapped[ModelVersion] = relationship()


@event.listens_for(ModelVersion, "before_update")
def _versions_are_immutable(mapper: Any, connection: Any, target: ModelVersion) -> None:
    raise ValueError(f"model version {target.id} is immutable: promote the run again to make a new version")
