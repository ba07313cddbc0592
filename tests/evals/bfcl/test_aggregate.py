"""Leaderboard aggregation: unweighted non-live, weighted live, irrelevance, missing categories."""

from __future__ import annotations

import pytest

from mor.evals.bfcl import CATEGORIES, ITEM_COUNTS, CategoryScore, summarize


def _scores(correct: dict[str, int]) -> dict[str, CategoryScore]:
    return {category: CategoryScore(category, hits, ITEM_COUNTS[category]) for category, hits in correct.items()}


FULL = {
    "simple_python": 360,  # 0.90
    "simple_java": 60,  # 0.60
    "simple_javascript": 30,  # 0.60
    "multiple": 180,  # 0.90
    "parallel": 160,  # 0.80
    "parallel_multiple": 140,  # 0.70
    "irrelevance": 216,  # 0.90
    "live_simple": 200,
    "live_multiple": 700,
    "live_parallel": 8,
    "live_parallel_multiple": 12,
    "live_irrelevance": 442,  # 0.50
    "live_relevance": 12,  # 0.75
}


def test_category_accuracy() -> None:
    assert CategoryScore("parallel", 150, 200).accuracy == 0.75
    assert CategoryScore("empty", 0, 0).accuracy == 0.0


def test_summary_columns_follow_the_leaderboard() -> None:
    summary = summarize(_scores(FULL))
    # simple: unweighted mean of python, java, javascript (the 50 js items weigh as much as 400 python)
    assert summary.simple.accuracy == pytest.approx((0.9 + 0.6 + 0.6) / 3)
    assert summary.simple.total == 550
    assert summary.non_live_ast.accuracy == pytest.approx((0.7 + 0.9 + 0.8 + 0.7) / 4)
    assert summary.non_live_overall.accuracy == pytest.approx((0.7 + 0.9 + 0.8 + 0.7 + 0.9) / 5)
    # live AST: correct / total over the four live AST categories
    assert summary.live_ast.accuracy == pytest.approx((200 + 700 + 8 + 12) / (258 + 1053 + 16 + 24))
    assert summary.live_ast.total == 1351
    assert summary.live_overall.accuracy == pytest.approx((920 + 442 + 12) / (1351 + 884 + 16))
    assert summary.irrelevance.accuracy == pytest.approx((0.9 + 0.5) / 2)
    assert summary.relevance.accuracy == pytest.approx(0.75)
    assert all(column["complete"] for column in summary.to_dict().values())


def test_a_missing_category_counts_as_zero_and_marks_the_summary_incomplete() -> None:
    partial = {key: value for key, value in FULL.items() if key != "simple_javascript"}
    summary = summarize(_scores(partial))
    assert summary.simple.accuracy == pytest.approx((0.9 + 0.6 + 0.0) / 3)
    assert not summary.simple.complete and not summary.non_live_ast.complete
    assert summary.live_ast.complete and summary.irrelevance.complete
    assert "simple_javascript" in summary.simple.categories


def test_only_live_categories_scored() -> None:
    live = {key: value for key, value in FULL.items() if key.startswith("live_")}
    summary = summarize(_scores(live))
    assert summary.non_live_ast.accuracy == 0.0 and not summary.non_live_ast.complete
    assert summary.live_ast.complete
    assert set(summary.to_dict()) == {
        "simple",
        "non_live_ast",
        "non_live_overall",
        "live_ast",
        "live_overall",
        "irrelevance",
        "relevance",
    }
    assert len(CATEGORIES) == 13
