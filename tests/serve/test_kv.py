"""The padded batch cache: joining left-pads the shorter side, leaving drops rows and all-padding columns."""

from __future__ import annotations

import torch

from mor.serve.kv import PaddedCache, make_cache


def _cache(rows: int, width: int, value: float, layers: int = 2) -> PaddedCache:
    tensors = [(torch.full((rows, 2, width, 4), value), torch.full((rows, 2, width, 4), -value)) for _ in range(layers)]
    return PaddedCache(cache=make_cache(tensors), mask=torch.ones((rows, width), dtype=torch.long))


def test_join_left_pads_and_keep_trims() -> None:
    batch = _cache(2, 3, 1.0)
    batch.join(_cache(1, 5, 2.0))
    assert batch.rows == 3 and batch.width == 5
    assert batch.mask.tolist() == [[0, 0, 1, 1, 1], [0, 0, 1, 1, 1], [1, 1, 1, 1, 1]]
    keys = batch.cache.layers[1].keys
    assert keys.shape == (3, 2, 5, 4) and float(keys[0, :, :2].abs().sum()) == 0.0 and float(keys[2, 0, 0, 0]) == 2.0
    assert batch.cache.get_seq_length() == 5
    batch.keep([1, 0])  # the long row leaves: two padding columns are dropped
    assert batch.width == 3 and batch.mask.tolist() == [[1, 1, 1], [1, 1, 1]]
    assert float(batch.cache.layers[0].values[0, 0, 0, 0]) == -1.0


def test_extend_mask_adds_a_real_column() -> None:
    batch = _cache(1, 2, 1.0)
    batch.join(_cache(1, 4, 1.0))
    assert batch.extend_mask().tolist() == [[0, 0, 1, 1, 1], [1, 1, 1, 1, 1]]
