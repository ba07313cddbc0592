"""A small synthetic data set and tokenizer for the agent tests."""

from __future__ import annotations

import pytest

from mor.base import train_tokenizer
from mor.data import DEFAULT_ROLES, SyntheticDataset, generate_synthetic, render_text


@pytest.fixture(scope="session")
def dataset() -> SyntheticDataset:
    return generate_synthetic(tools=24, trajectories=400, seed=11, test_fraction=0.25)


@pytest.fixture(scope="session")
def tokenizer(dataset: SyntheticDataset):
    return train_tokenizer([render_text(t) for t in dataset.train], roles=DEFAULT_ROLES, vocab_size=512)


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread: None) -> None:
    """Every test here runs with one intra-op thread (`one_torch_thread` in tests/conftest.py)."""
