"""Helpers shared by test modules (importable because pytest puts tests/ on sys.path)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from mor.settings import Settings

if TYPE_CHECKING:
    from mor.evals.synthetic import SyntheticEvalResult

__all__ = ["benchmarks_dir", "settings_for", "shared_dataset", "shared_path", "synthetic_result"]

_SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "benchmarks"
_SHARED_ROOT = Path(__file__).resolve().parents[1].parent / "shared"


def shared_path(relative: str, marker: str, what: str) -> Path:
    """`../shared/<relative>` beside the repository, read in place (never copied), when it holds `marker`; skips the
    test when absent, and fails it under CI=true, where ../shared is laid beside the clone."""
    found = _SHARED_ROOT / relative
    if (found / marker).is_file():
        return found
    message = f"{what} not found at {found}"
    if os.environ.get("CI") == "true":
        pytest.fail(message + f" (CI has ../shared/{relative.split('/')[0]} beside the clone)")
    pytest.skip(message)


def settings_for(home: Path) -> Settings:
    """Settings of `home` that ignore the caller's environment."""
    return Settings(home=home, mlflow_tracking_uri=None, database_url=None, ray_address=None, benchmarks_dir=None)


def shared_dataset(name: str) -> Path:
    """The data set sample `name` in ../shared/datasets beside the repository, read in place (never copied); skips
    the test when absent, and fails it under CI=true where the samples must be."""
    return shared_path(f"datasets/{name}", "LICENSE.txt", "data set sample")


def benchmarks_dir(needs: str = "bfcl") -> Path:
    """The benchmark data directory holding `needs/` (MOR_BENCHMARKS_DIR, else ../shared/benchmarks beside the
    repository), read in place; skips the test when absent, and fails it under CI=true where the data must be."""
    candidates = [Path(os.environ["MOR_BENCHMARKS_DIR"])] if os.environ.get("MOR_BENCHMARKS_DIR") else []
    candidates.append(_SHARED)
    for candidate in candidates:
        if (candidate / needs).is_dir():
            return candidate
    message = f"benchmark data not found: set MOR_BENCHMARKS_DIR to the directory holding {needs}/"
    if os.environ.get("CI") == "true":
        pytest.fail(message + " (CI has ../shared/benchmarks beside the clone)")
    pytest.skip(message)


def synthetic_result() -> SyntheticEvalResult:
    """A synthetic evaluation of four held-out items: one passes, two fail on the executor, one on the reasoner."""
    from mor.evals.synthetic import SyntheticEvalResult, SyntheticItemResult, summarize

    def item(
        item_id: str, category: str | None, role: str | None = None, reason: str | None = None
    ) -> SyntheticItemResult:
        return SyntheticItemResult(
            item_id=item_id,
            category=category,
            passed=role is None,
            calls_match=role is None,
            answer_ok=role is None,
            failing_role=role,
            failure_reason=reason,
            output=None if role else "42",
            predicted_calls=[],
            expected_calls=[{"name": "add", "arguments": {"a": 1}}],
            latency_s=0.25,
        )

    items = [
        item("t0", "math"),
        item("t1", "math", "executor", 'called add({"a": 2}), expected add({"a": 1})'),
        item("t2", "weather", "executor", "made no call"),
        item("t3", None, "reasoner", "picked summarizer as the next role, expected executor"),
    ]
    return SyntheticEvalResult(items, summarize(items))
