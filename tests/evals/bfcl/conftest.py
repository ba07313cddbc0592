"""Shared fixtures: the BFCL v4 data, read in place from ../shared/benchmarks (or MOR_BENCHMARKS_DIR)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from mor.evals.bfcl import BfclItem, load_items


def _benchmarks_dir() -> Path | None:
    candidates = [Path(os.environ["MOR_BENCHMARKS_DIR"])] if os.environ.get("MOR_BENCHMARKS_DIR") else []
    candidates.append(Path(__file__).resolve().parents[3].parent / "shared" / "benchmarks")
    for candidate in candidates:
        if (candidate / "bfcl").is_dir():
            return candidate
    return None


@pytest.fixture(scope="session")
def benchmarks_dir() -> Path:
    """The directory holding bfcl/ (never copied into the repository)."""
    found = _benchmarks_dir()
    if found is None:
        message = "BFCL data not found: set MOR_BENCHMARKS_DIR to the directory holding bfcl/"
        if os.environ.get("CI") == "true":
            pytest.fail(message + " (CI has ../shared/benchmarks beside the clone)")
        pytest.skip(message)
    return found


@pytest.fixture(scope="session")
def items_of(benchmarks_dir: Path) -> Callable[[str], list[BfclItem]]:
    """Load a category's items once per test session."""
    cache: dict[str, list[BfclItem]] = {}

    def load(category: str) -> list[BfclItem]:
        if category not in cache:
            cache[category] = load_items(category, benchmarks_dir)
        return cache[category]

    return load
