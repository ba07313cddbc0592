"""A left-padded batch of KV caches that rows join and leave between decoding steps.

Every row's tokens are right-aligned in the cache (`[batch, heads, width, head_dim]` per layer); `mask` (`[batch,
width]`, 1 for a real token) tells attention which columns are padding. Rows join by left-padding the shorter side
and concatenating along the batch; rows leave by selecting the rest, after which columns that are padding in every
remaining row are dropped. Only Hugging Face's `DynamicCache` (full-attention layers) is used.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from transformers import DynamicCache
from transformers.cache_utils import DynamicLayer

__all__ = ["PaddedCache", "make_cache"]


def make_cache(tensors: list[tuple[torch.Tensor, torch.Tensor]]) -> DynamicCache:
    """A `DynamicCache` holding these `(keys, values)` per layer, without copying them."""
    cache = DynamicCache()
    for keys, values in tensors:
        layer = DynamicLayer()
        layer.lazy_initialization(keys, values)
        layer.keys, layer.values = keys, values
        cache.layers.append(layer)
    return cache


def _tensors(cache: DynamicCache) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return [(layer.keys, layer.values) for layer in cache.layers]


def _pad_left(tensor: torch.Tensor, columns: int, dim: int) -> torch.Tensor:
    if columns == 0:
        return tensor
    shape = list(tensor.shape)
    shape[dim] = columns
    return torch.cat([tensor.new_zeros(shape), tensor], dim=dim)


@dataclass
class PaddedCache:
    """The KV cache and attention mask of a batch of rows (see the module docstring)."""

    cache: DynamicCache
    mask: torch.Tensor  # (batch, width) long

    @property
    def rows(self) -> int:
        """Number of rows."""
        return int(self.mask.shape[0])

    @property
    def width(self) -> int:
        """Number of cache columns (the longest row's length)."""
        return int(self.mask.shape[1])

    def extend_mask(self) -> torch.Tensor:
        """The attention mask of the next decoding step (one more real column per row); stored as the new mask."""
        self.mask = torch.cat([self.mask, self.mask.new_ones((self.rows, 1))], dim=1)
        return self.mask

    def join(self, other: PaddedCache) -> None:
        """Append `other`'s rows (left-padding whichever side is shorter)."""
        width = max(self.width, other.width)
        mine, theirs = _tensors(self.cache), _tensors(other.cache)
        merged = []
        for (k1, v1), (k2, v2) in zip(mine, theirs, strict=True):
            k = torch.cat([_pad_left(k1, width - self.width, 2), _pad_left(k2, width - other.width, 2)], dim=0)
            v = torch.cat([_pad_left(v1, width - self.width, 2), _pad_left(v2, width - other.width, 2)], dim=0)
            merged.append((k, v))
        self.mask = torch.cat(
            [_pad_left(self.mask, width - self.width, 1), _pad_left(other.mask, width - other.width, 1)], dim=0
        )
        self.cache = make_cache(merged)

    def keep(self, rows: list[int]) -> None:
        """Keep only `rows` (in this order), then drop the columns that are padding in all of them."""
        index = torch.tensor(rows, dtype=torch.long, device=self.mask.device)
        mask = self.mask.index_select(0, index)
        real = mask.any(dim=0).nonzero()
        start = int(real[0]) if real.numel() else mask.shape[1]
        self.mask = mask[:, start:].contiguous()
        self.cache = make_cache(
            [
                (
                    k.index_select(0, index)[:, :, start:].contiguous(),
                    v.index_select(0, index)[:, :, start:].contiguous(),
                )
                for k, v in _tensors(self.cache)
            ]
        )
