"""Writes of evaluated models, runs and per-item results, and the run lookups the jobs need; every function takes
the session as a keyword. Reporting queries are in `mor.store.reports`."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from mor.store.base import utcnow
from mor.store.errors import InvalidValueError, NotFoundError, StoreError
from mor.store.models import JUDGE_KINDS, TERMINAL_RUN_STATUSES, EvalRun, EvaluatedModel, ItemResult

__all__ = [
    "NewItemResult",
    "add_item_results",
    "create_run",
    "finish_run",
    "get_or_create_model",
    "get_run",
    "hash_config",
    "reusable_run",
    "run_for_fire",
    "start_run",
]


@dataclass(frozen=True)
class NewItemResult:
    """One item's verdict, as handed to `add_item_results` (the suite comes from the run)."""

    category: str
    item_id: str
    passed: bool
    failure_reason: str | None = None
    failing_role: str | None = None
    detail: str | None = None
    output: Any = None
    latency_ms: float | None = None


def hash_config(config: Mapping[str, Any]) -> str:
    """A stable SHA-256 of a run configuration (key order and whitespace do not matter)."""
    canonical = json.dumps(config, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _check_judge_kind(judge_kind: str | None) -> None:
    if judge_kind is not None and judge_kind not in JUDGE_KINDS:
        raise InvalidValueError(
            "judge_kind",
            judge_kind,
            f"must be one of {', '.join(JUDGE_KINDS)} or None",
            "use 'llm' for an LLM judge, 'rule-based' for the fallback judge, None for exact checkers",
        )


def _select_model(uri: str, name: str, version: str | None) -> Select[tuple[EvaluatedModel]]:
    return (
        select(EvaluatedModel)
        .where(EvaluatedModel.uri == uri, EvaluatedModel.name == name)
        .where(EvaluatedModel.version.is_(None) if version is None else EvaluatedModel.version == version)
        .order_by(EvaluatedModel.id)
        .limit(1)
    )


def get_or_create_model(
    *, session: Session, uri: str, name: str, version: str | None = None, base_model: str | None = None
) -> EvaluatedModel:
    """The evaluated-model row for (uri, name, version), created on first use."""
    found = session.scalars(_select_model(uri, name, version)).first()
    if found is not None:
        if base_model is not None and found.base_model is None:
            found.base_model = base_model
        return found
    model = EvaluatedModel(uri=uri, name=name, version=version, base_model=base_model, created_at=utcnow())
    try:
        with session.begin_nested():  # a concurrent job may insert the same model first
            session.add(model)
    except IntegrityError:
        found = session.scalars(_select_model(uri, name, version)).first()
        if found is None:
            raise
        return found
    return model


def create_run(
    *,
    session: Session,
    suite: str,
    categories: Sequence[str],
    model_uri: str,
    triggered_by: str,
    schedule_id: int | None = None,
    scheduled_for: datetime | None = None,
    attempt: int = 1,
    retry_of: int | None = None,
    config: Mapping[str, Any] | None = None,
    config_hash: str | None = None,
    judge_kind: str | None = None,
    ray_job_id: str | None = None,
    model: EvaluatedModel | None = None,
    now: datetime | None = None,
) -> EvalRun:
    """Record a queued run. `triggered_by` is 'user:<name>' or 'schedule:<name>'; the config hash defaults to
    `hash_config(config)`."""
    if not suite:
        raise InvalidValueError("suite", suite, "must not be empty", "e.g. 'bfcl' or 'stabletoolbench'")
    if attempt < 1:
        raise InvalidValueError("attempt", attempt, "must be >= 1", "the first attempt is 1")
    _check_judge_kind(judge_kind)
    run = EvalRun(
        suite=suite,
        categories=list(categories),
        status="queued",
        model_uri=model_uri,
        model_id=model.id if model is not None else None,
        triggered_by=triggered_by,
        schedule_id=schedule_id,
        scheduled_for=scheduled_for,
        attempt=attempt,
        retry_of=retry_of,
        config=dict(config) if config is not None else None,
        config_hash=config_hash or (hash_config(config) if config is not None else None),
        judge_kind=judge_kind,
        ray_job_id=ray_job_id,
        created_at=now or utcnow(),
    )
    session.add(run)
    session.flush()
    return run


def get_run(*, session: Session, run_id: int) -> EvalRun:
    """The run with id `run_id`, or `NotFoundError`."""
    run = session.get(EvalRun, run_id)
    if run is None:
        raise NotFoundError("run", run_id, "list runs with `mor eval results`")
    return run


def start_run(
    *,
    session: Session,
    run_id: int,
    model: EvaluatedModel | None = None,
    ray_job_id: str | None = None,
    now: datetime | None = None,
) -> EvalRun:
    """Mark a queued run running; record what the model URI resolved to and the Ray job running it."""
    run = get_run(session=session, run_id=run_id)
    if run.status != "queued":
        raise StoreError(f"run {run_id}: status is {run.status!r}, only a queued run can start; create a new run")
    run.status = "running"
    run.started_at = now or utcnow()
    if model is not None:
        run.model_id = model.id
    if ray_job_id is not None:
        run.ray_job_id = ray_job_id
    session.flush()
    return run


def finish_run(
    *,
    session: Session,
    run_id: int,
    status: str,
    summary: Mapping[str, Any] | None = None,
    error: str | None = None,
    mlflow_run_id: str | None = None,
    judge_kind: str | None = None,
    now: datetime | None = None,
) -> EvalRun:
    """Mark a run succeeded or failed, with its summary metrics, error text and MLflow run id."""
    if status not in TERMINAL_RUN_STATUSES:
        raise InvalidValueError("status", status, "must be 'succeeded' or 'failed'", "finish_run ends a run")
    _check_judge_kind(judge_kind)
    run = get_run(session=session, run_id=run_id)
    if run.status in TERMINAL_RUN_STATUSES:
        raise StoreError(f"run {run_id}: already {run.status}, it cannot finish twice; create a new run to re-run")
    if judge_kind is not None and run.judge_kind is not None and judge_kind != run.judge_kind:
        raise InvalidValueError(
            "judge_kind",
            judge_kind,
            f"differs from the run's {run.judge_kind!r}; judged and rule-based scores are never mixed in one run",
            "start a separate run for the other judge",
        )
    run.status = status
    run.finished_at = now or utcnow()
    if run.started_at is None:
        run.started_at = run.finished_at
    if summary is not None:
        run.summary = dict(summary)
    if error is not None:
        run.error = error
    if mlflow_run_id is not None:
        run.mlflow_run_id = mlflow_run_id
    if judge_kind is not None:
        run.judge_kind = judge_kind
    session.flush()
    return run


def add_item_results(*, session: Session, run_id: int, results: Iterable[NewItemResult]) -> int:
    """Insert per-item verdicts of a run in bulk; returns how many were inserted."""
    run = get_run(session=session, run_id=run_id)
    rows = [
        {
            "run_id": run.id,
            "suite": run.suite,
            "category": result.category,
            "item_id": result.item_id,
            "passed": bool(result.passed),
            "failure_reason": result.failure_reason,
            "failing_role": result.failing_role,
            "detail": result.detail,
            "output": result.output,
            "latency_ms": result.latency_ms,
        }
        for result in results
    ]
    if rows:
        session.execute(insert(ItemResult), rows)
    return len(rows)


def reusable_run(*, session: Session, suite: str, model_uri: str, config_hash: str) -> EvalRun | None:
    """The newest succeeded run of `model_uri` on `suite` with exactly this configuration hash, if any.

    For results that depend only on their configuration (a deterministic baseline): reuse instead of re-running.
    """
    return session.scalars(
        select(EvalRun)
        .where(EvalRun.suite == suite, EvalRun.model_uri == model_uri, EvalRun.config_hash == config_hash)
        .where(EvalRun.status == "succeeded")
        .order_by(EvalRun.finished_at.desc(), EvalRun.id.desc())
        .limit(1)
    ).first()


def run_for_fire(*, session: Session, schedule_id: int, scheduled_for: datetime) -> EvalRun | None:
    """The latest attempt's run of one schedule fire (how a scheduled job finds the row it reports to)."""
    return session.scalars(
        select(EvalRun)
        .where(EvalRun.schedule_id == schedule_id, EvalRun.scheduled_for == scheduled_for)
        .order_by(EvalRun.attempt.desc())
        .limit(1)
    ).first()
