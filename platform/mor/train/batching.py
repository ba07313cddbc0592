"""Length-grouped, rank-aware batching: little padding on CPU, the same batches on every restart."""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence

from torch.utils.data import Sampler

__all__ = ["LengthGroupedBatchSampler"]


class LengthGroupedBatchSampler(Sampler[list[int]]):
    """Yields this rank's batches of indices for one epoch.

    Samples are shuffled by `(seed, epoch)`, sorted by length inside windows of `window` batches (so a batch holds
    sequences of similar length), the batches shuffled again and dealt round-robin to the ranks. Every rank gets
    the same number of batches (the tail is dropped), as DDP needs. `skip` batches are left out at the start, to
    resume in the middle of an epoch.
    """

    def __init__(
        self,
        lengths: Sequence[int],
        batch_size: int,
        *,
        rank: int = 0,
        world_size: int = 1,
        seed: int = 0,
        window: int = 32,
    ) -> None:
        if batch_size < 1 or world_size < 1 or not 0 <= rank < world_size:
            raise ValueError(f"bad batching: batch_size={batch_size}, rank={rank}, world_size={world_size}")
        self.lengths = list(lengths)
        self.batch_size = batch_size
        self.rank = rank
        self.world_size = world_size
        self.seed = seed
        self.window = window
        self.epoch = 0
        self.skip = 0

    def set_epoch(self, epoch: int, skip: int = 0) -> None:
        """Select the epoch (reshuffles) and how many of this rank's batches to skip."""
        self.epoch = epoch
        self.skip = skip

    def _all_batches(self) -> list[list[int]]:
        rng = random.Random(self.seed * 1_000_003 + self.epoch)
        order = list(range(len(self.lengths)))
        rng.shuffle(order)
        span = self.batch_size * self.window
        batches: list[list[int]] = []
        for start in range(0, len(order), span):
            chunk = sorted(order[start : start + span], key=lambda i: self.lengths[i])
            batches.extend(chunk[i : i + self.batch_size] for i in range(0, len(chunk), self.batch_size))
        rng.shuffle(batches)
        usable = (len(batches) // self.world_size) * self.world_size
        return batches[:usable]

    def __len__(self) -> int:
        """Batches per rank per epoch (before skipping)."""
        total = -(-len(self.lengths) // self.batch_size)
        return total // self.world_size

    def __iter__(self) -> Iterator[list[int]]:
        mine = self._all_batches()[self.rank :: self.world_size]
        yield from mine[self.skip :]
