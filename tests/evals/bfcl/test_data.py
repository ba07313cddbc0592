"""Loading BFCL v4 items from the data directory, read in place."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from mor.evals.bfcl import (
    AST_CATEGORIES,
    CATEGORIES,
    ITEM_COUNTS,
    RELEVANCE_CATEGORIES,
    BfclDataError,
    BfclItem,
    Language,
    bfcl_dir,
    check_category,
    language_of,
    load_items,
)


@pytest.mark.parametrize("category", CATEGORIES)
def test_every_category_loads_with_its_v4_item_count(category: str, items_of: Callable[[str], list[BfclItem]]) -> None:
    items = items_of(category)
    assert len(items) == ITEM_COUNTS[category]
    assert len({item.id for item in items}) == len(items)
    assert all(item.category == category and item.messages for item in items)
    # Only live_irrelevance has items offering no function at all (4 of them).
    assert sum(not item.functions for item in items) == (4 if category == "live_irrelevance" else 0)
    if category in AST_CATEGORIES:
        assert all(item.ground_truth for item in items)
    else:
        assert all(item.ground_truth is None for item in items)


def test_items_carry_question_functions_and_ground_truth(items_of: Callable[[str], list[BfclItem]]) -> None:
    item = items_of("simple_python")[0]
    assert item.id == "simple_python_0"
    assert item.language is Language.PYTHON
    assert item.messages[0]["role"] == "user" and "triangle" in item.question
    assert item.functions[0]["name"] == "calculate_triangle_area"
    assert item.ground_truth == [{"calculate_triangle_area": {"base": [10], "height": [5], "unit": ["units", ""]}}]
    java = items_of("simple_java")[0]
    assert java.language is Language.JAVA
    assert items_of("simple_javascript")[0].language is Language.JAVASCRIPT


def test_live_items_keep_their_system_message(items_of: Callable[[str], list[BfclItem]]) -> None:
    with_system = [item for item in items_of("live_multiple") if item.messages[0]["role"] == "system"]
    assert with_system
    assert with_system[0].question  # the last user message


@pytest.mark.parametrize(
    ("category", "language"),
    [("simple_java", Language.JAVA), ("simple_javascript", Language.JAVASCRIPT), ("live_simple", Language.PYTHON)],
)
def test_language_of(category: str, language: Language) -> None:
    assert language_of(category) is language


def test_check_category_accepts_the_suite_prefix_and_names_the_valid_ones() -> None:
    assert check_category("bfcl/live_relevance") == "live_relevance"
    with pytest.raises(BfclDataError, match=r"category: got 'simple'.*simple_python"):
        check_category("simple")
    with pytest.raises(BfclDataError, match="must be one of"):
        check_category("bfcl/multi_turn_base")
    assert set(RELEVANCE_CATEGORIES) | set(AST_CATEGORIES) == set(CATEGORIES)


def test_bfcl_dir_accepts_the_parent_or_the_bfcl_directory(benchmarks_dir: Path, tmp_path: Path) -> None:
    assert bfcl_dir(benchmarks_dir) == benchmarks_dir / "bfcl"
    assert bfcl_dir(benchmarks_dir / "bfcl") == benchmarks_dir / "bfcl"
    with pytest.raises(BfclDataError, match="holds no bfcl/BFCL_v4_<category>.json files; give the directory"):
        bfcl_dir(tmp_path)


def _write(path: Path, rows: list[dict[str, object]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))


def test_load_items_reports_a_missing_ground_truth(tmp_path: Path) -> None:
    question = {"id": "multiple_0", "question": [[{"role": "user", "content": "hi"}]], "function": []}
    _write(tmp_path / "bfcl" / "BFCL_v4_multiple.json", [question])
    _write(tmp_path / "bfcl" / "possible_answer" / "BFCL_v4_multiple.json", [])
    with pytest.raises(BfclDataError, match=r"no ground truth for 1 item\(s\), e\.g\. multiple_0"):
        load_items("multiple", tmp_path)


def test_load_items_names_the_line_of_bad_json(tmp_path: Path) -> None:
    path = tmp_path / "bfcl" / "BFCL_v4_irrelevance.json"
    path.parent.mkdir(parents=True)
    path.write_text('{"id": "irrelevance_0", "question": [[]], "function": []}\n{oops\n')
    with pytest.raises(BfclDataError, match=r"BFCL_v4_irrelevance.json:2: not JSON"):
        load_items("irrelevance", tmp_path)


def test_load_items_reports_a_missing_category_file(tmp_path: Path) -> None:
    _write(tmp_path / "bfcl" / "BFCL_v4_irrelevance.json", [])
    with pytest.raises(BfclDataError, match=r"BFCL_v4_live_relevance.json: no such file"):
        load_items("live_relevance", tmp_path)
