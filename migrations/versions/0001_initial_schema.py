"""Initial schema: evaluated models, eval runs, item results, schedules and schedule fires.

Revision ID: 0001
Revises:
Create Date: 2026-11-23

Written by hand (checked against `alembic revision --autogenerate`). Migrations never import mor's models:
they describe the schema as it was at this revision. Timestamps are timestamptz on PostgreSQL and naive UTC
on SQLite (mor.store.base.UTCDateTime does the conversion); JSON columns are JSONB on PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _json() -> sa.types.TypeEngine:
    return sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def _timestamp() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "evaluated_models",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("uri", sa.String(512), nullable=False),
        sa.Column("name", sa.String(256), nullable=False),
        sa.Column("version", sa.String(64), nullable=True),
        sa.Column("base_model", sa.String(512), nullable=True),
        sa.Column("created_at", _timestamp(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_evaluated_models")),
        sa.UniqueConstraint("uri", "name", "version", name=op.f("uq_evaluated_models_uri_name_version")),
    )

    op.create_table(
        "schedules",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("cron", sa.String(128), nullable=False),
        sa.Column("suite", sa.String(64), nullable=False),
        sa.Column("categories", _json(), nullable=False),
        sa.Column("model_uri", sa.String(512), nullable=False),
        sa.Column("timezone", sa.String(64), nullable=False),
        sa.Column("catch_up", sa.String(16), nullable=False),
        sa.Column("max_retries", sa.Integer(), nullable=False),
        sa.Column("paused", sa.Boolean(), nullable=False),
        sa.Column("next_fire_at", _timestamp(), nullable=True),
        sa.Column("config", _json(), nullable=False),
        sa.Column("created_by", sa.String(128), nullable=True),
        sa.Column("created_at", _timestamp(), nullable=False),
        sa.Column("updated_at", _timestamp(), nullable=False),
        sa.CheckConstraint("catch_up IN ('skip', 'run_once', 'run_all')", name=op.f("ck_schedules_catch_up")),
        sa.CheckConstraint("max_retries >= 0", name=op.f("ck_schedules_max_retries")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_schedules")),
        sa.UniqueConstraint("name", name=op.f("uq_schedules_name")),
    )
    op.create_index("ix_schedules_paused_next_fire_at", "schedules", ["paused", "next_fire_at"])

    op.create_table(
        "eval_runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("suite", sa.String(64), nullable=False),
        sa.Column("categories", _json(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("model_uri", sa.String(512), nullable=False),
        sa.Column("model_id", sa.Integer(), nullable=True),
        sa.Column("triggered_by", sa.String(128), nullable=False),
        sa.Column("schedule_id", sa.Integer(), nullable=True),
        sa.Column("scheduled_for", _timestamp(), nullable=True),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("retry_of", sa.Integer(), nullable=True),
        sa.Column("ray_job_id", sa.String(128), nullable=True),
        sa.Column("config", _json(), nullable=True),
        sa.Column("config_hash", sa.String(64), nullable=True),
        sa.Column("judge_kind", sa.String(16), nullable=True),
        sa.Column("summary", _json(), nullable=True),
        sa.Column("mlflow_run_id", sa.String(64), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", _timestamp(), nullable=False),
        sa.Column("started_at", _timestamp(), nullable=True),
        sa.Column("finished_at", _timestamp(), nullable=True),
        sa.CheckConstraint("status IN ('queued', 'running', 'succeeded', 'failed')", name=op.f("ck_eval_runs_status")),
        sa.CheckConstraint(
            "judge_kind IS NULL OR judge_kind IN ('llm', 'rule-based')", name=op.f("ck_eval_runs_judge_kind")
        ),
        sa.CheckConstraint("attempt >= 1", name=op.f("ck_eval_runs_attempt")),
        sa.ForeignKeyConstraint(
            ["model_id"], ["evaluated_models.id"], name=op.f("fk_eval_runs_model_id_evaluated_models")
        ),
        sa.ForeignKeyConstraint(
            ["schedule_id"], ["schedules.id"], name=op.f("fk_eval_runs_schedule_id_schedules"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["retry_of"], ["eval_runs.id"], name=op.f("fk_eval_runs_retry_of_eval_runs"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_eval_runs")),
    )
    op.create_index(op.f("ix_eval_runs_model_id"), "eval_runs", ["model_id"])
    op.create_index(op.f("ix_eval_runs_ray_job_id"), "eval_runs", ["ray_job_id"])
    op.create_index("ix_eval_runs_schedule_id_scheduled_for", "eval_runs", ["schedule_id", "scheduled_for"])
    op.create_index("ix_eval_runs_suite_status_finished_at", "eval_runs", ["suite", "status", "finished_at"])

    op.create_table(
        "item_results",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("suite", sa.String(64), nullable=False),
        sa.Column("category", sa.String(64), nullable=False),
        sa.Column("item_id", sa.String(256), nullable=False),
        sa.Column("passed", sa.Boolean(), nullable=False),
        sa.Column("failure_reason", sa.String(64), nullable=True),
        sa.Column("failing_role", sa.String(64), nullable=True),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column("output", _json(), nullable=True),
        sa.Column("latency_ms", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(
            ["run_id"], ["eval_runs.id"], name=op.f("fk_item_results_run_id_eval_runs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_item_results")),
        sa.UniqueConstraint("run_id", "category", "item_id", name=op.f("uq_item_results_run_id_category_item_id")),
    )
    # Covers "score over time per category": WHERE suite, category; GROUP BY run_id; count(passed).
    op.create_index("ix_item_results_suite_category_run", "item_results", ["suite", "category", "run_id", "passed"])

    op.create_table(
        "schedule_fires",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("schedule_id", sa.Integer(), nullable=False),
        sa.Column("scheduled_for", _timestamp(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=True),
        sa.Column("owner_id", sa.String(128), nullable=True),
        sa.Column("lease_expires_at", _timestamp(), nullable=True),
        sa.Column("not_before", _timestamp(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", _timestamp(), nullable=False),
        sa.Column("updated_at", _timestamp(), nullable=False),
        sa.CheckConstraint(
            "status IN ('pending', 'submitting', 'submitted', 'succeeded', 'failed')",
            name=op.f("ck_schedule_fires_status"),
        ),
        sa.CheckConstraint("attempts >= 0", name=op.f("ck_schedule_fires_attempts")),
        sa.ForeignKeyConstraint(
            ["schedule_id"], ["schedules.id"], name=op.f("fk_schedule_fires_schedule_id_schedules"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["run_id"], ["eval_runs.id"], name=op.f("fk_schedule_fires_run_id_eval_runs"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_schedule_fires")),
        # The once-only guarantee: one row per (schedule, cron time), whatever the number of schedulers.
        sa.UniqueConstraint("schedule_id", "scheduled_for", name=op.f("uq_schedule_fires_schedule_id_scheduled_for")),
    )
    op.create_index("ix_schedule_fires_status_not_before", "schedule_fires", ["status", "not_before"])


def downgrade() -> None:
    op.drop_index("ix_schedule_fires_status_not_before", table_name="schedule_fires")
    op.drop_table("schedule_fires")
    op.drop_index("ix_item_results_suite_category_run", table_name="item_results")
    op.drop_table("item_results")
    op.drop_index("ix_eval_runs_suite_status_finished_at", table_name="eval_runs")
    op.drop_index("ix_eval_runs_schedule_id_scheduled_for", table_name="eval_runs")
    op.drop_index(op.f("ix_eval_runs_ray_job_id"), table_name="eval_runs")
    op.drop_index(op.f("ix_eval_runs_model_id"), table_name="eval_runs")
    op.drop_table("eval_runs")
    op.drop_index("ix_schedules_paused_next_fire_at", table_name="schedules")
    op.drop_table("schedules")
    op.drop_table("evaluated_models")
