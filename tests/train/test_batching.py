from __future__ import annotations

import random

import pytest

from mor.train.batching import LengthGroupedBatchSampler


def _lengths(n: int = 203, seed: int = 1) -> list[int]:
    rng = random.Random(seed)
    return [rng.randint(10, 400) for _ in range(n)]


def test_ranks_partition_the_batches_evenly() -> None:
    lengths = _lengths()
    per_rank = [list(LengthGroupedBatchSampler(lengths, 8, rank=r, world_size=3, seed=5)) for r in range(3)]
    assert len({len(batches) for batches in per_rank}) == 1
    seen = [i for batches in per_rank for batch in batches for i in batch]
    assert len(seen) == len(set(seen)), "no sample is given to two ranks"
    assert len(seen) >= len(lengths) - 3 * 8, "at most the tail that does not divide is dropped"


def test_batches_hold_similar_lengths() -> None:
    lengths = _lengths(2000)
    batches = list(LengthGroupedBatchSampler(lengths, 8, seed=0, window=32))
    spread = sum(max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in batches) / len(batches)
    random_spread = 390 * 7 / 9  # expected range of 8 uniform draws over 10..400
    assert spread < random_spread / 5


def test_same_seed_same_order_and_epochs_differ() -> None:
    lengths = _lengths()
    first = LengthGroupedBatchSampler(lengths, 4, seed=3)
    second = LengthGroupedBatchSampler(lengths, 4, seed=3)
    assert list(first) == list(second)
    second.set_epoch(1)
    assert list(first) != list(second)


def test_skip_resumes_mid_epoch() -> None:
    sampler = LengthGroupedBatchSampler(_lengths(), 4, rank=1, world_size=2, seed=9)
    sampler.set_epoch(2)
    full = list(sampler)
    sampler.set_epoch(2, skip=5)
    assert list(sampler) == full[5:]
    assert len(sampler) == len(full)


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="rank=2, world_size=2"):
        LengthGroupedBatchSampler([1, 2], 1, rank=2, world_size=2)
