"""Training texts for the built-in base: rendered synthetic trajectories (small, fixed seed)."""

from __future__ import annotations

import pytest

from mor.data import generate_synthetic, render_text


@pytest.fixture(scope="session")
def texts() -> list[str]:
    return [render_text(t) for t in generate_synthetic(tools=10, trajectories=200, seed=1).train]
