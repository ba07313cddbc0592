"""BFCL v4 data: categories, languages, and loading items with their ground truth from a data directory.

The data directory is laid out as upstream ships it (and as `../shared/benchmarks/bfcl` holds it):
`BFCL_v4_<category>.json` (JSON Lines despite the suffix) and `possible_answer/BFCL_v4_<category>.json`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

__all__ = [
    "AST_CATEGORIES",
    "CATEGORIES",
    "ITEM_COUNTS",
    "LIVE_AST_CATEGORIES",
    "NON_LIVE_AST_CATEGORIES",
    "RELEVANCE_CATEGORIES",
    "BfclDataError",
    "BfclItem",
    "Language",
    "bfcl_dir",
    "check_category",
    "language_of",
    "load_items",
]

NON_LIVE_AST_CATEGORIES: tuple[str, ...] = (
    "simple_python",
    "simple_java",
    "simple_javascript",
    "multiple",
    "parallel",
    "parallel_multiple",
)
LIVE_AST_CATEGORIES: tuple[str, ...] = ("live_simple", "live_multiple", "live_parallel", "live_parallel_multiple")
AST_CATEGORIES: tuple[str, ...] = NON_LIVE_AST_CATEGORIES + LIVE_AST_CATEGORIES
# Scored on whether the output holds a call at all; they have no possible-answer file.
RELEVANCE_CATEGORIES: tuple[str, ...] = ("irrelevance", "live_irrelevance", "live_relevance")
CATEGORIES: tuple[str, ...] = AST_CATEGORIES + RELEVANCE_CATEGORIES

# Items per category in the v4 release; the leaderboard counts a category that was not run as 0% over these.
ITEM_COUNTS: dict[str, int] = {
    "simple_python": 400,
    "simple_java": 100,
    "simple_javascript": 50,
    "multiple": 200,
    "parallel": 200,
    "parallel_multiple": 200,
    "irrelevance": 240,
    "live_simple": 258,
    "live_multiple": 1053,
    "live_parallel": 16,
    "live_parallel_multiple": 24,
    "live_irrelevance": 884,
    "live_relevance": 16,
}

_PREFIX = "BFCL_v4_"


class BfclDataError(ValueError):
    """BFCL data that cannot be found or read; the message names the path, the problem and a fix."""


class Language(StrEnum):
    """The language a category's functions are written in; it selects the type rules of the checker."""

    PYTHON = "python"
    JAVA = "java"
    JAVASCRIPT = "javascript"


@dataclass(frozen=True)
class BfclItem:
    """One BFCL question: the messages, the candidate functions and (for AST categories) the ground truth.

    `ground_truth` is a list of calls `{function_name: {param: [acceptable values]}}`; it is None for the
    irrelevance/relevance categories, which are scored on whether the output holds a call at all.
    """

    id: str
    category: str
    messages: list[dict[str, Any]]
    functions: list[dict[str, Any]]
    ground_truth: list[dict[str, dict[str, list[Any]]]] | None = None
    language: Language = Language.PYTHON

    @property
    def question(self) -> str:
        """The last user message's text (the question proper)."""
        users = [m.get("content", "") for m in self.messages if m.get("role") == "user"]
        return users[-1] if users else ""


def check_category(category: str) -> str:
    """Return `category` if BFCL v4 has it (AST or relevance), else raise naming the valid ones."""
    name = category.removeprefix("bfcl/")
    if name not in CATEGORIES:
        hint = " (the v4 name of python 'simple' is simple_python)" if name == "simple" else ""
        raise BfclDataError(
            f"category: got {category!r}{hint}; must be one of {', '.join(CATEGORIES)}; e.g. bfcl/simple_python"
        )
    return name


def language_of(category: str) -> Language:
    """The language whose type rules apply to `category` (java and javascript only for the simple ones)."""
    if "javascript" in category:
        return Language.JAVASCRIPT
    if "java" in category:
        return Language.JAVA
    return Language.PYTHON


def bfcl_dir(data_dir: Path) -> Path:
    """The directory holding the BFCL files: `data_dir/bfcl`, or `data_dir` itself if it holds them."""
    data_dir = Path(data_dir).expanduser()
    for candidate in (data_dir / "bfcl", data_dir):
        if candidate.is_dir() and any(candidate.glob(f"{_PREFIX}*.json")):
            return candidate
    raise BfclDataError(
        f"data dir: {str(data_dir)!r} holds no bfcl/{_PREFIX}<category>.json files; give the directory that "
        "holds bfcl/ (e.g. --data-dir ../shared/benchmarks or MOR_BENCHMARKS_DIR); to download BFCL v4, see "
        "'Benchmark data' in README.md"
    )


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        raise BfclDataError(f"{path}: no such file; the BFCL v4 release ships it, re-download the data")
    rows: list[dict[str, Any]] = []
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as error:
                raise BfclDataError(f"{path}:{number}: not JSON ({error.msg}); the file must be JSON Lines") from None
            if not isinstance(row, dict) or "id" not in row:
                raise BfclDataError(f"{path}:{number}: expected an object with an 'id', got {type(row).__name__}")
            rows.append(row)
    return rows


def _first_turn(row: dict[str, Any], path: Path) -> list[dict[str, Any]]:
    question = row.get("question")
    if not isinstance(question, list) or not question:
        raise BfclDataError(f"{path}: item {row['id']}: 'question' must be a non-empty list of turns")
    turn = question[0]
    # Single-turn categories: the first turn is the whole question (older files had a flat list of messages).
    return list(turn) if isinstance(turn, list) else list(question)


def load_items(category: str, data_dir: Path) -> list[BfclItem]:
    """Load the items of one BFCL v4 category, each with its functions and (AST categories) ground truth.

    `data_dir` is the directory holding `bfcl/` (or the bfcl directory itself). Items keep the file's order.
    """
    category = check_category(category)
    root = bfcl_dir(data_dir)
    question_path = root / f"{_PREFIX}{category}.json"
    rows = _read_jsonl(question_path)
    answers: dict[str, list[dict[str, Any]]] = {}
    if category in AST_CATEGORIES:
        answer_path = root / "possible_answer" / f"{_PREFIX}{category}.json"
        for row in _read_jsonl(answer_path):
            answers[row["id"]] = row["ground_truth"]
        missing = [row["id"] for row in rows if row["id"] not in answers]
        if missing:
            raise BfclDataError(
                f"{answer_path}: no ground truth for {len(missing)} item(s), e.g. {missing[0]}; "
                "the question and possible-answer files come from different releases, re-download both"
            )
    language = language_of(category)
    return [
        BfclItem(
            id=row["id"],
            category=category,
            messages=_first_turn(row, question_path),
            functions=list(row.get("function", [])),
            ground_truth=answers.get(row["id"]),
            language=language,
        )
        for row in rows
    ]
