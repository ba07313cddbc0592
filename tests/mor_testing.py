"""Helpers shared by test modules (importable because pytest puts tests/ on sys.path)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

__all__ = ["benchmarks_dir"]

_SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "benchmarks"


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
