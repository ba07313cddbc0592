"""Queries on evaluated models, runs and per-item results; every function takes the session as a keyword."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Integer, Select, and_, func, insert, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, aliased

from mor.store.base import utcnow
from mor.store.errors import InvalidValueError, NotFoundError, StoreError
from mor.store.models import JUDGE_KINDS, TERMINAL_RUN_STATUSES, EvalRun, EvaluatedModel, ItemResult

__all__ = [
    "CategoryDelta",
    "FlippedItem",
    "NewItemResult",
    "RunComparison",
    "ScorePoint",
    "add_item_results",
    "compare_runs",
    "create_run",
    "finish_run",
    "get_or_create_model",
    "get_run",
    "hash_config",
    "item_results",
    "list_runs",
    "run_for_fire",
    "score_history",
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


@dataclass(frozen=True)
class ScorePoint:
    """The accuracy of one category in one finished run: a point of the score-over-time curve."""

    run_id: int
    finished_at: datetime
    model_uri: str
    model_name: str | None
    model_version: str | None
    judge_kind: str | None
    category: str
    passed: int
    total: int

    @property
    def accuracy(self) -> float:
        """passed / total (0.0 for an empty category)."""
        return self.passed / self.total if self.total else 0.0


@dataclass(frozen=True)
class CategoryDelta:
    """One category in two runs; delta is B's accuracy minus A's (None where a run lacks the category)."""

    category: str
    passed_a: int
    total_a: int
    passed_b: int
    total_b: int

    @property
    def accuracy_a(self) -> float | None:
        return self.passed_a / self.total_a if self.total_a else None

    @property
    def accuracy_b(self) -> float | None:
        return self.passed_b / self.total_b if self.total_b else None

    @property
    def delta(self) -> float | None:
        a, b = self.accuracy_a, self.accuracy_b
        return None if a is None or b is None else b - a


@dataclass(frozen=True)
class FlippedItem:
    """An item whose verdict differs between run A and run B."""

    category: str
    item_id: str
    passed_a: bool
    passed_b: bool
    failure_reason_a: str | None
    failure_reason_b: str | None
    failing_role_a: str | None
    failing_role_b: str | None


@dataclass(frozen=True)
class RunComparison:
    """Per-category deltas and flipped items between two runs of the same suite."""

    run_a: EvalRun
    run_b: EvalRun
    categories: list[CategoryDelta]
    flipped: list[FlippedItem]

    @property
    def fixed(self) -> list[FlippedItem]:
        """Items that failed in A and pass in B."""
        return [item for item in self.flipped if item.passed_b]

    @property
    def broken(self) -> list[FlippedItem]:
        """Items that passed in A and fail in B."""
        return [item for item in self.flipped if not item.passed_b]


def hash_config(config: Mapping[str, Any]) -> str:
    """A stable SHA-256 of a run configuration (key order and whitespace do not matter)."""
    canonical = json.dumps(config, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _check_judge_kind(judge_kind: str | None) -> None:
    if judge_kind is not None and judge_kind not in JUDGE_KINDS:
        raise InvalidValueError(
            "judge_kind", judge_kind, f"must be one of {', '.join(JUDGE_KINDS)} or None",
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
            "judge_kind", judge_kind, f"differs from the run's {run.judge_kind!r}; judged and rule-based scores "
            "are never mixed in one run", "start a separate run for the other judge",
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


def item_results(*, session: Session, run_id: int, category: str | None = None) -> list[ItemResult]:
    """The item verdicts of a run, by category then item id."""
    query = select(ItemResult).where(ItemResult.run_id == run_id)
    if category is not None:
        query = query.where(ItemResult.category == category)
    return list(session.scalars(query.order_by(ItemResult.category, ItemResult.item_id)))


def _model_filter(model: str) -> Any:
    # A model is named by the URI as given (models:/mor-agent@champion) or by its resolved name (mor-agent).
    return or_(EvalRun.model_uri == model, EvalRun.model.has(EvaluatedModel.name == model))


def list_runs(
    *,
    session: Session,
    suite: str | None = None,
    model: str | None = None,
    since: datetime | None = None,
    status: str | None = None,
    schedule_id: int | None = None,
    limit: int | None = None,
) -> list[EvalRun]:
    """Runs, newest first, filtered by suite, model (URI as given or resolved name), creation time and status."""
    query = select(EvalRun)
    if suite is not None:
        query = query.where(EvalRun.suite == suite)
    if model is not None:
        query = query.where(_model_filter(model))
    if since is not None:
        query = query.where(EvalRun.created_at >= since)
    if status is not None:
        query = query.where(EvalRun.status == status)
    if schedule_id is not None:
        query = query.where(EvalRun.schedule_id == schedule_id)
    query = query.order_by(EvalRun.created_at.desc(), EvalRun.id.desc())
    if limit is not None:
        query = query.limit(limit)
    return list(session.scalars(query))


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


def score_history(
    *,
    session: Session,
    suite: str,
    model: str | None = None,
    categories: Sequence[str] | None = None,
    since: datetime | None = None,
    judge_kind: str | None = None,
) -> list[ScorePoint]:
    """Accuracy per category of every succeeded run of `suite`, oldest first, computed from the item rows.

    Runs judged by an LLM and by the rule-based judge are different series: pass `judge_kind` to pick one;
    without it, points carry their judge kind so callers can keep them apart.
    """
    _check_judge_kind(judge_kind)
    passed = func.sum(ItemResult.passed.cast(Integer))
    query = (
        select(
            EvalRun.id,
            EvalRun.finished_at,
            EvalRun.model_uri,
            EvaluatedModel.name,
            EvaluatedModel.version,
            EvalRun.judge_kind,
            ItemResult.category,
            passed,
            func.count(ItemResult.id),
        )
        .join(ItemResult, and_(ItemResult.run_id == EvalRun.id, ItemResult.suite == EvalRun.suite))
        .outerjoin(EvaluatedModel, EvaluatedModel.id == EvalRun.model_id)
        .where(EvalRun.suite == suite, EvalRun.status == "succeeded")
        .group_by(
            EvalRun.id,
            EvalRun.finished_at,
            EvalRun.model_uri,
            EvaluatedModel.name,
            EvaluatedModel.version,
            EvalRun.judge_kind,
            ItemResult.category,
        )
        .order_by(EvalRun.finished_at, EvalRun.id, ItemResult.category)
    )
    if model is not None:
        query = query.where(or_(EvalRun.model_uri == model, EvaluatedModel.name == model))
    if categories:
        query = query.where(ItemResult.category.in_(list(categories)))
    if since is not None:
        query = query.where(EvalRun.finished_at >= since)
    if judge_kind is not None:
        query = query.where(EvalRun.judge_kind == judge_kind)
    return [
        ScorePoint(
            run_id=row[0],
            finished_at=row[1],
            model_uri=row[2],
            model_name=row[3],
            model_version=row[4],
            judge_kind=row[5],
            category=row[6],
            passed=int(row[7] or 0),
            total=int(row[8]),
        )
        for row in session.execute(query)
    ]


def _category_counts(session: Session, run_id: int) -> dict[str, tuple[int, int]]:
    rows = session.execute(
        select(ItemResult.category, func.sum(ItemResult.passed.cast(Integer)), func.count(ItemResult.id))
        .where(ItemResult.run_id == run_id)
        .group_by(ItemResult.category)
    )
    return {category: (int(passed or 0), int(total)) for category, passed, total in rows}


def compare_runs(*, session: Session, run_a: int, run_b: int) -> RunComparison:
    """Per-category accuracy deltas (B - A) and the items whose verdict flipped between two runs.

    Both runs must be of the same suite and, where a judge was used, of the same judge kind.
    """
    first, second = get_run(session=session, run_id=run_a), get_run(session=session, run_id=run_b)
    if first.suite != second.suite:
        raise InvalidValueError(
            "run_b", run_b, f"is a {second.suite!r} run and run {run_a} a {first.suite!r} run; only runs of one "
            "suite compare", "pick two runs of the same suite (`mor eval results --suite ...`)",
        )
    if first.judge_kind != second.judge_kind:
        raise InvalidValueError(
            "run_b", run_b, f"was judged {second.judge_kind!r} and run {run_a} {first.judge_kind!r}; LLM-judged "
            "and rule-based scores are never mixed", "compare runs judged the same way",
        )
    counts_a, counts_b = _category_counts(session, run_a), _category_counts(session, run_b)
    categories = [
        CategoryDelta(category, *counts_a.get(category, (0, 0)), *counts_b.get(category, (0, 0)))
        for category in sorted(set(counts_a) | set(counts_b))
    ]
    item_a, item_b = aliased(ItemResult), aliased(ItemResult)
    flipped_rows = session.execute(
        select(
            item_a.category, item_a.item_id, item_a.passed, item_b.passed,
            item_a.failure_reason, item_b.failure_reason, item_a.failing_role, item_b.failing_role,
        )
        .join(item_b, and_(item_b.category == item_a.category, item_b.item_id == item_a.item_id))
        .where(item_a.run_id == run_a, item_b.run_id == run_b, item_a.passed != item_b.passed)
        .order_by(item_a.category, item_a.item_id)
    )
    flipped = [FlippedItem(*row) for row in flipped_rows]
    return RunComparison(run_a=first, run_b=second, categories=categories, flipped=flipped)
