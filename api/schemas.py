"""Request and response bodies of the REST API (what /docs shows)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from core.spec import TrainSpec

MAX_ID = 2**31 - 1  # ids are INTEGER columns (int4 on PostgreSQL): a larger one is a 422, not a database error
NUL_REFUSED = "contains a NUL character (\\u0000), which no vtp value has (and PostgreSQL cannot store)"


def has_nul(value: Any) -> bool:
    """Whether a NUL character is in ``value`` or in any string nested in it (dict keys included)."""
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(has_nul(k) or has_nul(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return any(has_nul(v) for v in value)
    return False


class ApiIn(BaseModel):
    """A request body: a NUL character in any of its strings is a 422 (one stored on SQLite would
    differ from PostgreSQL, which refuses it with an error)."""

    @field_validator("*", mode="after")
    @classmethod
    def _no_nul(cls, value: Any) -> Any:
        if has_nul(value):
            raise ValueError(NUL_REFUSED)
        return value


RunState = Literal["queued", "pending", "running", "completed", "failed", "cancelled", "crashed"]


class ErrorOut(BaseModel):
    detail: str = Field(description="What went wrong and what to do about it.")


class ValidationErrorOut(ErrorOut):
    """The body of every 422: ``detail`` says it all in one string; ``errors`` has one line per bad
    field (request and spec problems), ``problems`` one finding per file (dataset problems)."""

    errors: list[str] | None = Field(default=None, description="One line per problem: 'field: what is wrong'.")
    problems: list[Any] | None = Field(default=None, description="Dataset findings: {severity, file, message}.")


class Page(BaseModel):
    total: int
    limit: int
    offset: int


# -- health -------------------------------------------------------------------------------------

class Check(BaseModel):
    ok: bool
    detail: str = ""


class HealthOut(BaseModel):
    status: Literal["ok", "degraded"] = Field(description="`degraded` when Prefect is unreachable (runs cannot start).")
    database: Check
    prefect: Check
    storage_url: str
    api_url: str


# -- projects -----------------------------------------------------------------------------------

class ProjectCreate(ApiIn):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100, examples=["defects"])
    description: str = Field(default="", max_length=10_000)


class ProjectOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    description: str
    created: datetime


# -- datasets -----------------------------------------------------------------------------------

class DatasetRegister(ApiIn):
    """Register a dataset that already lives in storage (it is not copied)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100, examples=["cracks"])
    uri: str = Field(examples=["s3://acme/datasets/cracks"], description="file:///path or s3://bucket/prefix")
    task: Literal["detect", "segment", "classify", "pose", "obb"] | None = None
    project_id: int | None = Field(default=None, ge=1, le=MAX_ID)


class DatasetVersion(BaseModel):
    version: int = Field(description="1 for the first import of the name, then 2, 3, ...")
    hash: str | None = Field(description="First 12 hex digits of the sha256 of the version's files and their sums.")
    uri: str
    classes: list[str] = Field(default_factory=list)
    counts: dict[str, Any] = Field(default_factory=dict, description="Images per split.")
    created: float = Field(description="Unix time of the import, in seconds.")


class DatasetOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    uri: str
    format: str | None
    task: str | None
    classes: list[str]
    counts: dict[str, Any]
    report: dict[str, Any] | None = Field(description="The validation report of the import, when vtp imported it.")
    project_id: int | None
    created: datetime
    versions: list[DatasetVersion] = Field(
        default_factory=list, description="Every imported version of the name, oldest first (from the storage "
        "registry); `NAME@v<version>` pins one in a TrainSpec. Empty for a dataset registered where it is.")


class DatasetList(Page):
    items: list[DatasetOut]


# -- runs ---------------------------------------------------------------------------------------

class RunCreate(ApiIn):
    model_config = ConfigDict(extra="forbid")

    spec: dict[str, Any] = Field(
        description="A TrainSpec, complete or partial: omitted fields take the spec's defaults "
                    "(see the TrainSpec schema). `dataset` is required.",
        examples=[{"model": "yolo11n", "dataset": "shapes-detect", "epochs": 2, "image_size": 128}],
    )
    project_id: int | None = Field(default=None, ge=1, le=MAX_ID)
    client_request_id: str | None = Field(
        default=None, min_length=1, max_length=200,
        description="Makes submission idempotent: the same id returns the same run (200 instead of 201).",
    )


class RunEvent(BaseModel):
    time: datetime
    kind: str = Field(description="resumed | stale | retrying")
    message: str
    epoch: int | None = None
    attempt: int | None = None


class RunOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    name: str | None = Field(default=None, description="Readable unique name, `<model>-<dataset>-<n>` (e.g. "
                             "`yolo11n-shapes-detect-7`); also the Prefect flow run's name. "
                             "`GET /api/runs/{name}` finds the run by it.")
    origin: Literal["api", "prefect", "register"] = Field(
        default="api", description="Where the run was started: `api` (REST, chat, UI), `prefect` (found in "
        "Prefect: `vtp train`, schedules, the Prefect UI) or `register` (reported by its flow afterwards).")
    project_id: int | None
    spec: dict[str, Any]
    state: RunState
    prefect_flow_run_id: str | None
    created: datetime
    started: datetime | None
    finished: datetime | None
    final_metrics: dict[str, Any] | None
    checkpoint_uri: str | None
    error: str | None
    epochs_done: int
    last_heartbeat: datetime | None
    client_request_id: str | None
    retry_of: str | None
    cancel_requested: bool
    attempt: int = Field(default=0, description="The newest attempt of the run that reported (1, then 2, 3, ... "
                         "after crash retries); 0 before the trainer's first heartbeat.")
    events: list[RunEvent] = Field(default_factory=list, description="What happened to the run besides its "
                                   "state changes: resumed after a crash (from which epoch), marked stale, retried.")

    @field_validator("events", mode="before")
    @classmethod
    def _events(cls, v: Any) -> Any:
        return v or []


RUN_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,35}$"
MetricName = Annotated[str, StringConstraints(min_length=1, max_length=200)]  # metric_points.name is VARCHAR(200)


class RunRegister(ApiIn):
    """A run that ran where the API's Prefect server could not see it (``vtp train --local``, python
    ``train_flow`` without a stack), reported by its flow. Idempotent on ``run_id``."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    run_id: str = Field(pattern=RUN_ID_PATTERN, description="The run's id (its storage folder runs/<run_id>/).")
    spec: dict[str, Any] = Field(description="The run's TrainSpec; validated like POST /api/runs.")
    state: RunState = Field(description="Its state now, normally the end state.")
    final_metrics: dict[MetricName, float] | None = Field(default=None, max_length=500,
                                                          description="Finite numbers only (no NaN or inf).")
    checkpoint_uri: str | None = Field(default=None, max_length=2000, description="file:///... or s3://...")
    epochs_done: int = Field(default=0, ge=0, le=1_000_000)
    prefect_flow_run_id: str | None = Field(default=None, min_length=1, max_length=36)
    error: str | None = Field(default=None, max_length=20_000, description="Plain text; never rendered as HTML.")


class RunList(Page):
    items: list[RunOut]


class MetricPointOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    epoch: int
    name: str
    value: float


class MetricsOut(BaseModel):
    run_id: str
    points: list[MetricPointOut] = Field(description="Ordered by epoch, then name.")


class ArtifactOut(BaseModel):
    path: str = Field(description="Relative to the run folder, e.g. checkpoints/best.pt")
    size: int
    sha256: str
    url: str = Field(description="Where to download it (same API token).")


class ArtifactsOut(BaseModel):
    run_id: str
    storage_uri: str
    files: list[ArtifactOut]


TRAIN_SPEC_SCHEMA = TrainSpec.model_json_schema(ref_template="#/components/schemas/{model}")
