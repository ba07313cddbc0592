"""Reporting queries on evaluation runs: listing, per-item results, score history and run comparison.

Read-only; the writes (models, runs, item rows) are in `mor.store.runs`. Every function takes the session as a
keyword.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Integer, and_, func, or_, select
from sqlalchemy.orm import Session, aliased

from mor.store.errors import InvalidValueError
from mor.store.models import EvalRun, EvaluatedModel, ItemResult
from mor.store.runs import _check_judge_kind, get_run

__all__ = [
    "CategoryDelta",
    "FlippedItem",
    "RunComparison",
    "ScorePoint",
    "compare_runs",
    "item_results",
    "list_runs",
    "score_history",
]


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
    """Per-category deltas and flipped items between two runs of the same suite.

    `only_in_a` / `only_in_b` count the items one run has and the other lacks (a smoke run with `--max-items`, a
    run of other categories): their accuracies are then over different items. With `shared_only`, the deltas are
    over the items both runs have.
    """

    run_a: EvalRun
    run_b: EvalRun
    categories: list[CategoryDelta]
    flipped: list[FlippedItem]
    only_in_a: int = 0
    only_in_b: int = 0
    shared: int = 0
    shared_only: bool = False

    @property
    def same_items(self) -> bool:
        """True when both runs have the same items."""
        return self.only_in_a == 0 and self.only_in_b == 0

    @property
    def fixed(self) -> list[FlippedItem]:
        """Items that failed in A and pass in B."""
        return [item for item in self.flipped if item.passed_b]

    @property
    def broken(self) -> list[FlippedItem]:
        """Items that passed in A and fail in B."""
        return [item for item in self.flipped if not item.passed_b]


def item_results(
    *,
    session: Session,
    run_id: int,
    category: str | None = None,
    passed: bool | None = None,
    failing_role: str | None = None,
) -> list[ItemResult]:
    """The item verdicts of a run, by category then item id; only one category, only passed (or failed) items,
    only items failed on one role when given."""
    query = select(ItemResult).where(ItemResult.run_id == run_id)
    if category is not None:
        query = query.where(ItemResult.category == category)
    if passed is not None:
        query = query.where(ItemResult.passed == passed)
    if failing_role is not None:
        query = query.where(ItemResult.failing_role == failing_role)
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
    model_version: str | None = None,
) -> list[EvalRun]:
    """Runs, newest first, filtered by suite, model (URI as given or resolved name) and the version it resolved to,
    creation time and status."""
    query = select(EvalRun)
    if suite is not None:
        query = query.where(EvalRun.suite == suite)
    if model is not None:
        query = query.where(_model_filter(model))
    if model_version is not None:
        query = query.where(EvalRun.model.has(EvaluatedModel.version == model_version))
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


_Item = tuple[str, str]  # (category, item id)


def _verdicts(session: Session, run_id: int) -> dict[_Item, bool]:
    rows = session.execute(
        select(ItemResult.category, ItemResult.item_id, ItemResult.passed).where(ItemResult.run_id == run_id)
    )
    return {(category, item_id): bool(passed) for category, item_id, passed in rows}


def _category_counts(verdicts: dict[_Item, bool], keep: set[_Item] | None) -> dict[str, tuple[int, int]]:
    counts: dict[str, tuple[int, int]] = {}
    for key, passed in verdicts.items():
        if keep is None or key in keep:
            done, total = counts.get(key[0], (0, 0))
            counts[key[0]] = (done + passed, total + 1)
    return counts


def compare_runs(*, session: Session, run_a: int, run_b: int, shared_only: bool = False) -> RunComparison:
    """Per-category accuracy deltas (B - A) and the items whose verdict flipped between two runs, with how many
    items only one of them has; `shared_only` computes the deltas over the items both have.

    Both runs must be of the same suite and, where a judge was used, of the same judge kind.
    """
    first, second = get_run(session=session, run_id=run_a), get_run(session=session, run_id=run_b)
    if first.suite != second.suite:
        raise InvalidValueError(
            "run_b",
            run_b,
            f"is a {second.suite!r} run and run {run_a} a {first.suite!r} run; only runs of one suite compare",
            "pick two runs of the same suite (`mor eval results --suite ...`)",
        )
    if first.judge_kind != second.judge_kind:
        raise InvalidValueError(
            "run_b",
            run_b,
            f"was judged {second.judge_kind!r} and run {run_a} {first.judge_kind!r}; LLM-judged "
            "and rule-based scores are never mixed",
            "compare runs judged the same way",
        )
    verdicts_a, verdicts_b = _verdicts(session, run_a), _verdicts(session, run_b)
    shared = verdicts_a.keys() & verdicts_b.keys()
    keep = shared if shared_only else None
    counts_a, counts_b = _category_counts(verdicts_a, keep), _category_counts(verdicts_b, keep)
    categories = [
        CategoryDelta(category, *counts_a.get(category, (0, 0)), *counts_b.get(category, (0, 0)))
        for category in sorted(set(counts_a) | set(counts_b))
    ]
    item_a, item_b = aliased(ItemResult), aliased(ItemResult)
    flipped_rows = session.execute(
        select(
            item_a.category,
            item_a.item_id,
            item_a.passed,
            item_b.passed,
            item_a.failure_reason,
            item_b.failure_reason,
            item_a.failing_role,
            item_b.failing_role,
        )
        .join(item_b, and_(item_b.category == item_a.category, item_b.item_id == item_a.item_id))
        .where(item_a.run_id == run_a, item_b.run_id == run_b, item_a.passed != item_b.passed)
        .order_by(item_a.category, item_a.item_id)
    )
    flipped = [FlippedItem(*row) for row in flipped_rows]
    return RunComparison(
        run_a=first,
        run_b=second,
        categories=categories,
        flipped=flipped,
        only_in_a=len(verdicts_a) - len(shared),
        only_in_b=len(verdicts_b) - len(shared),
        shared=len(shared),
        shared_only=shared_only,
    )
