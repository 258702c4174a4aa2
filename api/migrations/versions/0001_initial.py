"""initial schema: projects, datasets, runs, metric points, chat, API tokens

Revision ID: 0001
Revises:
Create Date: 2026-11-24
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen here on purpose: a later change to api.models must come with its own revision.
RUN_STATES = "('queued', 'pending', 'running', 'completed', 'failed', 'cancelled', 'crashed')"
CHAT_ROLES = "('system', 'user', 'assistant')"


def _when(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "api_tokens",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("prefix", sa.String(length=16), nullable=False),
        _when("created"),
        _when("last_used", nullable=True),
        sa.Column("revoked", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_tokens")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_api_tokens_token_hash")),
    )
    op.create_index(op.f("ix_api_tokens_prefix"), "api_tokens", ["prefix"])

    op.create_table(
        "projects",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        _when("created"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_projects")),
        sa.UniqueConstraint("name", name=op.f("uq_projects_name")),
    )

    op.create_table(
        "chat_sessions",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=True),
        _when("created"),
        sa.ForeignKeyConstraint(["project_id"], ["projects.id"], name=op.f("fk_chat_sessions_project_id_projects"),
                                ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_chat_sessions")),
    )
    op.create_index(op.f("ix_chat_sessions_project_id"), "chat_sessions", ["project_id"])

    op.create_table(
        "datasets",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("uri", sa.Text(), nullable=False),
        sa.Column("format", sa.String(length=32), nullable=True),
        sa.Column("task", sa.String(length=16), nullable=True),
        sa.Column("classes", sa.JSON(), nullable=False),
        sa.Column("counts", sa.JSON(), nullable=False),
        sa.Column("report", sa.JSON(), nullable=True),
        sa.Column("project_id", sa.Integer(), nullable=True),
        _when("created"),
        sa.ForeignKeyConstraint(["project_id"], ["projects.id"], name=op.f("fk_datasets_project_id_projects"),
                                ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_datasets")),
        sa.UniqueConstraint("name", name=op.f("uq_datasets_name")),
    )
    op.create_index(op.f("ix_datasets_project_id"), "datasets", ["project_id"])

    op.create_table(
        "runs",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=True),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("prefect_flow_run_id", sa.String(length=36), nullable=True),
        _when("created"),
        _when("started", nullable=True),
        _when("finished", nullable=True),
        sa.Column("final_metrics", sa.JSON(), nullable=True),
        sa.Column("checkpoint_uri", sa.Text(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("epochs_done", sa.Integer(), nullable=False),
        _when("last_heartbeat", nullable=True),
        sa.Column("client_request_id", sa.String(length=200), nullable=True),
        sa.Column("retry_of", sa.String(length=36), nullable=True),
        sa.CheckConstraint(f"state IN {RUN_STATES}", name=op.f("ck_runs_state")),
        sa.ForeignKeyConstraint(["project_id"], ["projects.id"], name=op.f("fk_runs_project_id_projects"),
                                ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["retry_of"], ["runs.id"], name=op.f("fk_runs_retry_of_runs"), ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_runs")),
        sa.UniqueConstraint("client_request_id", name=op.f("uq_runs_client_request_id")),
    )
    for column in ("created", "prefect_flow_run_id", "project_id", "state"):
        op.create_index(op.f(f"ix_runs_{column}"), "runs", [column])

    op.create_table(
        "chat_messages",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("session_id", sa.String(length=36), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("spec", sa.JSON(), nullable=True),
        _when("created"),
        sa.CheckConstraint(f"role IN {CHAT_ROLES}", name=op.f("ck_chat_messages_role")),
        sa.ForeignKeyConstraint(["session_id"], ["chat_sessions.id"],
                                name=op.f("fk_chat_messages_session_id_chat_sessions"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_chat_messages")),
    )
    op.create_index(op.f("ix_chat_messages_session_id"), "chat_messages", ["session_id"])

    op.create_table(
        "metric_points",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.String(length=36), nullable=False),
        sa.Column("epoch", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        _when("created"),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], name=op.f("fk_metric_points_run_id_runs"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_metric_points")),
        sa.UniqueConstraint("run_id", "epoch", "name", name="uq_metric_points_run_epoch_name"),
    )


def downgrade() -> None:
    # Children first; dropping a table drops its indexes and constraints.
    for table in ("metric_points", "chat_messages", "runs", "datasets", "chat_sessions", "projects", "api_tokens"):
        op.drop_table(table)
