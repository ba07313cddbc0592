"""A small synthetic data set and a tokenizer trained on it, shared by the data tests (session scope: built once)."""

from __future__ import annotations

import pytest

from mor.base import train_tokenizer
from mor.data import DEFAULT_ROLES, SyntheticDataset, generate_synthetic, render_text


@pytest.fixture(scope="session")
def small_dataset() -> SyntheticDataset:
    return generate_synthetic(tools=24, trajectories=600, seed=3, test_fraction=0.2)


@pytest.fixture(scope="session")
def tokenizer(small_dataset: SyntheticDataset):
    return train_tokenizer([render_text(t) for t in small_dataset.train], roles=DEFAULT_ROLES, vocab_size=600)
