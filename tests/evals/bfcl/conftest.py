"""Shared fixtures: the BFCL v4 data, read in place from ../shared/benchmarks (or MOR_BENCHMARKS_DIR)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from mor.evals.bfcl import BfclItem, load_items
from mor_testing import benchmarks_dir as find_benchmarks_dir


@pytest.fixture(scope="session")
def benchmarks_dir() -> Path:
    """The directory holding bfcl/ (never copied into the repository)."""
    return find_benchmarks_dir("bfcl")


@pytest.fixture(scope="session")
def items_of(benchmarks_dir: Path) -> Callable[[str], list[BfclItem]]:
    """Load a category's items once per test session."""
    cache: dict[str, list[BfclItem]] = {}

    def load(category: str) -> list[BfclItem]:
        if category not in cache:
            cache[category] = load_items(category, benchmarks_dir)
        return cache[category]

    return load
