"""Category scores and the leaderboard's summary columns, aggregated as the published leaderboard does.

How the leaderboard aggregates (BFCL v4, the single-turn columns):

- a category's accuracy is correct / total over all its items;
- **simple (non-live)** is the *unweighted* mean of simple_python, simple_java and simple_javascript, so the
  50 javascript items weigh as much as the 400 python ones;
- **non-live AST** is the unweighted mean of simple, multiple, parallel and parallel_multiple, and
  **non-live overall** the unweighted mean of those four and irrelevance;
- **live AST** is *weighted* by item count: correct / total summed over live_simple, live_multiple,
  live_parallel and live_parallel_multiple (live_multiple's 1053 items dominate), and **live overall** the
  same over those four plus live_irrelevance and live_relevance;
- **irrelevance** (hallucination) is the unweighted mean of irrelevance and live_irrelevance, and
  **relevance** is live_relevance;
- a category that was not scored counts as 0% (over its v4 item count) and the summary that needs it is
  marked incomplete, as the leaderboard shows N/A for it while still counting it as 0 in the overall numbers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field

from mor.evals.bfcl.data import ITEM_COUNTS

__all__ = ["CategoryScore", "LeaderboardSummary", "SummaryScore", "summarize"]


@dataclass(frozen=True)
class CategoryScore:
    """Correct and total items of one category."""

    category: str
    correct: int
    total: int

    @property
    def accuracy(self) -> float:
        """correct / total (0.0 for an empty category)."""
        return self.correct / self.total if self.total else 0.0


@dataclass(frozen=True)
class SummaryScore:
    """One summary column: its accuracy, the items behind it, and whether every category it needs was scored."""

    accuracy: float
    total: int
    complete: bool
    categories: tuple[str, ...] = field(default=())


@dataclass(frozen=True)
class LeaderboardSummary:
    """The leaderboard's single-turn summary columns (see the module docstring for the rules)."""

    simple: SummaryScore
    non_live_ast: SummaryScore
    non_live_overall: SummaryScore
    live_ast: SummaryScore
    live_overall: SummaryScore
    irrelevance: SummaryScore
    relevance: SummaryScore

    def to_dict(self) -> dict[str, dict[str, object]]:
        """Plain data for JSON output."""
        return {name: asdict(value) for name, value in self.__dict__.items()}


def _score(scores: Mapping[str, CategoryScore], category: str, counts: Mapping[str, int]) -> SummaryScore:
    if category in scores:
        score = scores[category]
        return SummaryScore(score.accuracy, score.total, True, (category,))
    return SummaryScore(0.0, counts.get(category, 0), False, (category,))


def _unweighted(parts: Sequence[SummaryScore]) -> SummaryScore:
    return SummaryScore(
        sum(part.accuracy for part in parts) / len(parts),
        sum(part.total for part in parts),
        all(part.complete for part in parts),
        tuple(category for part in parts for category in part.categories),
    )


def _weighted(parts: Sequence[SummaryScore]) -> SummaryScore:
    total = sum(part.total for part in parts)
    correct = sum(part.accuracy * part.total for part in parts)
    return SummaryScore(
        correct / total if total else 0.0,
        total,
        all(part.complete for part in parts),
        tuple(category for part in parts for category in part.categories),
    )


def summarize(scores: Mapping[str, CategoryScore], counts: Mapping[str, int] = ITEM_COUNTS) -> LeaderboardSummary:
    """Aggregate category scores into the leaderboard's summary columns.

    `scores` maps category names (simple_python, ..., live_relevance) to their scores; categories missing
    from it count as 0% over `counts` (the v4 item counts) and make the summaries that use them incomplete.
    """

    def get(category: str) -> SummaryScore:
        return _score(scores, category, counts)

    simple = _unweighted([get("simple_python"), get("simple_java"), get("simple_javascript")])
    non_live_parts = [simple, get("multiple"), get("parallel"), get("parallel_multiple")]
    live_parts = [get("live_simple"), get("live_multiple"), get("live_parallel"), get("live_parallel_multiple")]
    return LeaderboardSummary(
        simple=simple,
        non_live_ast=_unweighted(non_live_parts),
        non_live_overall=_unweighted([*non_live_parts, get("irrelevance")]),
        live_ast=_weighted(live_parts),
        live_overall=_weighted([*live_parts, get("live_irrelevance"), get("live_relevance")]),
        irrelevance=_unweighted([get("irrelevance"), get("live_irrelevance")]),
        relevance=get("live_relevance"),
    )
