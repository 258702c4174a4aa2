"""runs.name: a readable unique name (<model>-<dataset>-<n>); runs.origin: api, prefect or register

Existing runs are named in creation order, as new ones would have been.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen here on purpose (api.crud.run_name_base is the live version).
RUN_ORIGINS = "('api', 'prefect', 'register')"
NAME_MAX = 80
BASE_MAX = 60


def _slug(text: str) -> str:
    text = text.rstrip("/").rsplit("/", 1)[-1] if "://" in text else text  # a URI: its last segment
    return re.sub(r"-{2,}", "-", re.sub(r"[^a-z0-9.-]+", "-", text.lower())).strip("-.")


def _base(spec: dict) -> str:
    model, dataset = _slug(str(spec.get("model") or "run")), _slug(str(spec.get("dataset") or "data"))
    return (f"{model or 'run'}-{dataset or 'data'}")[:BASE_MAX].rstrip("-.")


def upgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("name", sa.String(length=NAME_MAX), nullable=True))
        batch.add_column(sa.Column("origin", sa.String(length=16), nullable=False, server_default="api"))
        batch.create_unique_constraint(op.f("uq_runs_name"), ["name"])
        batch.create_check_constraint(op.f("ck_runs_origin"), f"origin IN {RUN_ORIGINS}")
    runs = sa.table("runs", sa.column("id", sa.String), sa.column("spec", sa.JSON), sa.column("created"),
                    sa.column("name", sa.String))
    conn = op.get_bind()
    counts: dict[str, int] = {}
    for run_id, spec in conn.execute(sa.select(runs.c.id, runs.c.spec).order_by(runs.c.created, runs.c.id)).all():
        base = _base(spec if isinstance(spec, dict) else {})
        counts[base] = counts.get(base, 0) + 1
        conn.execute(runs.update().where(runs.c.id == run_id).values(name=f"{base}-{counts[base]}"))


def downgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.drop_constraint(op.f("ck_runs_origin"), type_="check")
        batch.drop_constraint(op.f("uq_runs_name"), type_="unique")
        batch.drop_column("origin")
        batch.drop_column("name")
