"""Scoring: one model output against one item, and a whole result file against a category.

Result files use the benchmark's own format: JSON Lines, one object per item with its `id` and the model's
`result` (a list of calls `{"func_name": {"arg": value}}`, or a raw string to be parsed); other keys
(latency, token counts) are ignored.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mor.evals.bfcl.aggregate import CategoryScore
from mor.evals.bfcl.checker import FailureReason, Verdict, check_ast, check_relevance
from mor.evals.bfcl.data import CATEGORIES, RELEVANCE_CATEGORIES, BfclDataError, BfclItem, load_items
from mor.evals.bfcl.parse import Call, ParseError, has_call, parse_output

__all__ = [
    "BfclBenchmark",
    "CategoryReport",
    "ItemResult",
    "ResultFileError",
    "read_results",
    "score_item",
    "score_results",
]


class ResultFileError(ValueError):
    """A result file that cannot be scored; the message names the file, the line, the problem and a fix."""


@dataclass(frozen=True)
class ItemResult:
    """The verdict on one item: passed, else why (reason, the published error type, a message)."""

    id: str
    category: str
    passed: bool
    reason: FailureReason | None = None
    error_type: str = ""
    message: str = ""
    calls: list[Call] | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON output and storage."""
        return {
            "id": self.id,
            "category": self.category,
            "passed": self.passed,
            "reason": self.reason.value if self.reason else None,
            "error_type": self.error_type,
            "message": self.message,
            "calls": self.calls,
        }


@dataclass(frozen=True)
class CategoryReport:
    """A category's score and every item's verdict, in the data file's order."""

    score: CategoryScore
    items: list[ItemResult] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON output."""
        return {
            "category": self.score.category,
            "accuracy": self.score.accuracy,
            "correct": self.score.correct,
            "total": self.score.total,
            "items": [item.to_dict() for item in self.items],
        }


def _result(item: BfclItem, verdict: Verdict, calls: list[Call] | None) -> ItemResult:
    return ItemResult(
        item.id, item.category, verdict.passed, verdict.reason, verdict.error_type, verdict.message, calls
    )


def score_item(item: BfclItem, output: object, *, underscore_names: bool = False) -> ItemResult:
    """Score one model output (a list of calls or a raw string) on one item.

    `underscore_names`: the model's API forbids "." in function names, so `a.b` is expected as `a_b`.
    """
    if item.category in RELEVANCE_CATEGORIES:
        found = has_call(output)
        calls = _calls_or_none(output, item)
        return _result(item, check_relevance(found, item.category), calls)
    try:
        calls = parse_output(output, item.language)
    except ParseError as error:
        verdict = Verdict(False, FailureReason.UNPARSEABLE, "ast_decoder:decoder_failed", f"Invalid syntax. {error}")
        return _result(item, verdict, None)
    if item.ground_truth is None:
        raise BfclDataError(f"item {item.id}: AST category {item.category} item has no ground truth")
    verdict = check_ast(
        item.functions, calls, item.ground_truth, item.category, item.language, underscore_names=underscore_names
    )
    return _result(item, verdict, calls)


def _calls_or_none(output: object, item: BfclItem) -> list[Call] | None:
    try:
        return parse_output(output, item.language)
    except ParseError:
        return None


def read_results(path: Path) -> list[dict[str, Any]]:
    """Read a BFCL result file (JSON Lines of `{"id", "result"}`), naming the line of any problem."""
    path = Path(path)
    if not path.is_file():
        raise ResultFileError(f"--results: {str(path)!r} is not a file; give a JSON Lines file of {{id, result}}")
    rows: list[dict[str, Any]] = []
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as error:
                raise ResultFileError(
                    f"{path}:{number}: not JSON ({error.msg}); each line must be one object {{id, result}}"
                ) from None
            if not isinstance(row, dict) or "id" not in row or "result" not in row:
                raise ResultFileError(
                    f"{path}:{number}: expected an object with 'id' and 'result', got "
                    f"{sorted(row) if isinstance(row, dict) else type(row).__name__}; "
                    'e.g. {"id": "simple_python_0", "result": [{"f": {"x": 1}}]}'
                )
            rows.append(row)
    return rows


def score_results(
    items: Sequence[BfclItem],
    results: Iterable[Mapping[str, Any]],
    *,
    underscore_names: bool = False,
    source: str = "results",
) -> CategoryReport:
    """Score result rows against a category's items; an item with no row fails as `missing_result`.

    Accuracy is over all the category's items, as on the leaderboard. Rows for ids outside the category,
    or two rows for one id, are errors.
    """
    by_id: dict[str, Mapping[str, Any]] = {}
    known = {item.id for item in items}
    category = items[0].category if items else ""
    for row in results:
        item_id = str(row["id"])
        if item_id not in known:
            raise ResultFileError(
                f"{source}: id {item_id!r} is not an item of {category or 'the category'}; "
                "score each category's results separately (e.g. bfcl/simple_python with its own file)"
            )
        if item_id in by_id:
            raise ResultFileError(f"{source}: id {item_id!r} appears twice; keep one result per item")
        by_id[item_id] = row
    verdicts: list[ItemResult] = []
    for item in items:
        row = by_id.get(item.id)
        if row is None:
            verdicts.append(
                ItemResult(
                    item.id,
                    item.category,
                    False,
                    FailureReason.MISSING_RESULT,
                    "missing_result",
                    "The result file has no line for this item.",
                )
            )
            continue
        verdicts.append(score_item(item, row["result"], underscore_names=underscore_names))
    correct = sum(verdict.passed for verdict in verdicts)
    return CategoryReport(CategoryScore(category, correct, len(items)), verdicts)


class BfclBenchmark:
    """BFCL's single-turn categories as a benchmark: load items, score one output per item."""

    name = "bfcl"
    categories: tuple[str, ...] = CATEGORIES

    def __init__(self, *, underscore_names: bool = False) -> None:
        self.underscore_names = underscore_names

    def load_items(self, category: str, data_dir: Path) -> list[BfclItem]:
        """The category's items (question messages, functions, ground truth) from `data_dir`."""
        return load_items(category, data_dir)

    def score_item(self, item: BfclItem, output: object) -> ItemResult:
        """The verdict on one model output for `item`."""
        return score_item(item, output, underscore_names=self.underscore_names)
