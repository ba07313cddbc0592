"""BFCL (Berkeley Function Calling Leaderboard) v4 single-turn categories: data, checker, scoring, aggregation."""

from mor.evals.bfcl.aggregate import CategoryScore, LeaderboardSummary, SummaryScore, summarize
from mor.evals.bfcl.checker import FailureReason, Verdict, check_ast, check_relevance, normalize_string
from mor.evals.bfcl.data import (
    AST_CATEGORIES,
    CATEGORIES,
    ITEM_COUNTS,
    LIVE_AST_CATEGORIES,
    NON_LIVE_AST_CATEGORIES,
    RELEVANCE_CATEGORIES,
    BfclDataError,
    BfclItem,
    Language,
    bfcl_dir,
    check_category,
    language_of,
    load_items,
)
from mor.evals.bfcl.parse import Call, ParseError, has_call, parse_output
from mor.evals.bfcl.reference import reference_output
from mor.evals.bfcl.score import (
    BfclBenchmark,
    CategoryReport,
    ItemResult,
    ResultFileError,
    read_results,
    score_item,
    score_results,
)

__all__ = [
    "AST_CATEGORIES",
    "CATEGORIES",
    "ITEM_COUNTS",
    "LIVE_AST_CATEGORIES",
    "NON_LIVE_AST_CATEGORIES",
    "RELEVANCE_CATEGORIES",
    "BfclBenchmark",
    "BfclDataError",
    "BfclItem",
    "Call",
    "CategoryReport",
    "CategoryScore",
    "FailureReason",
    "ItemResult",
    "Language",
    "LeaderboardSummary",
    "ParseError",
    "ResultFileError",
    "SummaryScore",
    "Verdict",
    "bfcl_dir",
    "check_ast",
    "check_category",
    "check_relevance",
    "has_call",
    "language_of",
    "load_items",
    "normalize_string",
    "parse_output",
    "read_results",
    "reference_output",
    "score_item",
    "score_results",
    "summarize",
]
