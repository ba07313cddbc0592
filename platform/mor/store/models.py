"""The tables: evaluated models, evaluation runs, per-item results, schedules and schedule fires."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from mor.store.base import Base, JSONValue, utcnow

__all__ = [
    "CATCH_UP_POLICIES",
    "FIRE_STATUSES",
    "JUDGE_KINDS",
    "RUN_STATUSES",
    "TERMINAL_RUN_STATUSES",
    "EvalRun",
    "EvaluatedModel",
    "ItemResult",
    "Schedule",
    "ScheduleFire",
]

RUN_STATUSES: Final = ("queued", "running", "succeeded", "failed")
TERMINAL_RUN_STATUSES: Final = ("succeeded", "failed")
# "llm": an LLM judge decided; "rule-based": the fallback judge ran. Scores of the two are never mixed.
# NULL: the suite needs no judge (BFCL's AST checker is exact).
JUDGE_KINDS: Final = ("llm", "rule-based")
CATCH_UP_POLICIES: Final = ("skip", "run_once", "run_all")
# pending: waiting to be submitted; submitting: claimed under a lease, submission in flight;
# submitted: the job id is recorded, waiting for the run to finish; succeeded / failed: final.
FIRE_STATUSES: Final = ("pending", "submitting", "submitted", "succeeded", "failed")

_ItemId = BigInteger().with_variant(Integer(), "sqlite")  # SQLite autoincrements INTEGER PRIMARY KEY only


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class EvaluatedModel(Base):
    """A model as evaluated: the URI as given and what it resolved to (an alias moves, a version does not)."""

    __tablename__ = "evaluated_models"
    __table_args__ = (UniqueConstraint("uri", "name", "version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    uri: Mapped[str] = mapped_column(String(512), doc="e.g. models:/mor-agent@champion or an endpoint URL")
    name: Mapped[str] = mapped_column(String(256), doc="resolved registered-model name")
    version: Mapped[str | None] = mapped_column(String(64), doc="resolved version; NULL when unversioned")
    base_model: Mapped[str | None] = mapped_column(String(512), doc="base model reference of the adapters")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    def __repr__(self) -> str:
        return f"EvaluatedModel(id={self.id}, name={self.name!r}, version={self.version!r})"


class Schedule(Base):
    """A cron schedule of an evaluation; the model is given by URI (an alias follows the champion)."""

    __tablename__ = "schedules"
    __table_args__ = (
        CheckConstraint(_in("catch_up", CATCH_UP_POLICIES), name="catch_up"),
        CheckConstraint("max_retries >= 0", name="max_retries"),
        Index("ix_schedules_paused_next_fire_at", "paused", "next_fire_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    cron: Mapped[str] = mapped_column(String(128))
    suite: Mapped[str] = mapped_column(String(64))
    categories: Mapped[list[str]] = mapped_column(JSONValue, default=list)
    model_uri: Mapped[str] = mapped_column(String(512))
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    catch_up: Mapped[str] = mapped_column(String(16), default="run_once")
    max_retries: Mapped[int] = mapped_column(Integer, default=0)
    paused: Mapped[bool] = mapped_column(default=False)
    next_fire_at: Mapped[datetime | None] = mapped_column(doc="next cron time not yet planned (UTC)")
    config: Mapped[dict[str, Any]] = mapped_column(JSONValue, default=dict, doc="extra run options")
    created_by: Mapped[str | None] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    def __repr__(self) -> str:
        return f"Schedule(id={self.id}, name={self.name!r}, cron={self.cron!r}, paused={self.paused})"


class EvalRun(Base):
    """One evaluation of one model on one suite (some categories), one-off or fired by a schedule."""

    __tablename__ = "eval_runs"
    __table_args__ = (
        CheckConstraint(_in("status", RUN_STATUSES), name="status"),
        CheckConstraint(f"judge_kind IS NULL OR {_in('judge_kind', JUDGE_KINDS)}", name="judge_kind"),
        CheckConstraint("attempt >= 1", name="attempt"),
        Index("ix_eval_runs_suite_status_finished_at", "suite", "status", "finished_at"),
        Index("ix_eval_runs_schedule_id_scheduled_for", "schedule_id", "scheduled_for"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    suite: Mapped[str] = mapped_column(String(64))
    categories: Mapped[list[str]] = mapped_column(JSONValue, default=list)
    status: Mapped[str] = mapped_column(String(16), default="queued")
    model_uri: Mapped[str] = mapped_column(String(512), doc="the model URI as given (alias URIs kept)")
    model_id: Mapped[int | None] = mapped_column(ForeignKey("evaluated_models.id"), index=True)
    triggered_by: Mapped[str] = mapped_column(String(128), doc="'user:<name>' or 'schedule:<name>'")
    schedule_id: Mapped[int | None] = mapped_column(ForeignKey("schedules.id", ondelete="SET NULL"))
    scheduled_for: Mapped[datetime | None] = mapped_column(doc="the cron time this run was fired for")
    attempt: Mapped[int] = mapped_column(Integer, default=1)
    retry_of: Mapped[int | None] = mapped_column(ForeignKey("eval_runs.id", ondelete="SET NULL"))
    ray_job_id: Mapped[str | None] = mapped_column(String(128), index=True)
    config: Mapped[dict[str, Any] | None] = mapped_column(JSONValue)
    config_hash: Mapped[str | None] = mapped_column(String(64))
    judge_kind: Mapped[str | None] = mapped_column(String(16))
    summary: Mapped[dict[str, Any] | None] = mapped_column(JSONValue, doc="summary metrics")
    mlflow_run_id: Mapped[str | None] = mapped_column(String(64))
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column()
    finished_at: Mapped[datetime | None] = mapped_column()

    model: Mapped[EvaluatedModel | None] = relationship(lazy="joined")

    def __repr__(self) -> str:
        return f"EvalRun(id={self.id}, suite={self.suite!r}, status={self.status!r}, attempt={self.attempt})"


class ItemResult(Base):
    """The verdict on one benchmark item in one run."""

    __tablename__ = "item_results"
    __table_args__ = (
        UniqueConstraint("run_id", "category", "item_id"),
        # Score over time per category: filter on (suite, category), group by run, count passed, all from the index.
        Index("ix_item_results_suite_category_run", "suite", "category", "run_id", "passed"),
    )

    id: Mapped[int] = mapped_column(_ItemId, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("eval_runs.id", ondelete="CASCADE"))
    suite: Mapped[str] = mapped_column(String(64))
    category: Mapped[str] = mapped_column(String(64))
    item_id: Mapped[str] = mapped_column(String(256))
    passed: Mapped[bool] = mapped_column()
    failure_reason: Mapped[str | None] = mapped_column(String(64))
    failing_role: Mapped[str | None] = mapped_column(String(64))
    detail: Mapped[str | None] = mapped_column(Text, doc="human-readable explanation of the verdict")
    output: Mapped[Any | None] = mapped_column(JSONValue, doc="the model output (text or JSON)")
    latency_ms: Mapped[float | None] = mapped_column(Float)

    def __repr__(self) -> str:
        return f"ItemResult(run_id={self.run_id}, {self.category}/{self.item_id}, passed={self.passed})"


class ScheduleFire(Base):
    """One (schedule, cron time): created once, claimed under a lease, linked to its latest run attempt.

    The unique (schedule_id, scheduled_for) is what makes a fire happen at most once across processes.
    """

    __tablename__ = "schedule_fires"
    __table_args__ = (
        UniqueConstraint("schedule_id", "scheduled_for"),
        CheckConstraint(_in("status", FIRE_STATUSES), name="status"),
        CheckConstraint("attempts >= 0", name="attempts"),
        Index("ix_schedule_fires_status_not_before", "status", "not_before"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    schedule_id: Mapped[int] = mapped_column(ForeignKey("schedules.id", ondelete="CASCADE"))
    scheduled_for: Mapped[datetime] = mapped_column()
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0, doc="run attempts started so far")
    run_id: Mapped[int | None] = mapped_column(ForeignKey("eval_runs.id", ondelete="SET NULL"))
    owner_id: Mapped[str | None] = mapped_column(String(128), doc="scheduler holding the lease")
    lease_expires_at: Mapped[datetime | None] = mapped_column()
    not_before: Mapped[datetime] = mapped_column(doc="earliest time to (re)submit; retries back off")
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    def __repr__(self) -> str:
        return (
            f"ScheduleFire(id={self.id}, schedule_id={self.schedule_id}, "
            f"scheduled_for={self.scheduled_for.isoformat()}, status={self.status!r})"
        )
