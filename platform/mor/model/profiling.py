"""Count what a step costs in operators and host synchronisations (torch profiler, any device).

Wall-clock time depends on the machine; operator counts do not, so tests assert these and benchmarks print them.
An operator that reads a tensor value on the host (`.item()`, `bool(t)`, `nonzero`, `bincount`, ...) forces a
host-device synchronisation on a GPU; on a CPU it is counted the same way, so a sync added to the code shows up
here before anyone runs it on a GPU.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

import torch

__all__ = ["SYNCING_OPERATORS", "OperatorCounts", "count_operators"]

#: aten operators that need a tensor's value on the host (a device synchronisation on a GPU).
SYNCING_OPERATORS = frozenset(
    {
        "aten::_local_scalar_dense",
        "aten::nonzero",
        "aten::bincount",
        "aten::masked_select",
        "aten::_unique2",
        "aten::unique_consecutive",
        "aten::unique_dim",
        "aten::repeat_interleave",
        "aten::is_nonzero",
    }
)


@dataclass(frozen=True)
class OperatorCounts:
    """aten operator calls of one step (nested calls included), by name."""

    by_name: Counter[str]

    @property
    def total(self) -> int:
        """All aten operator calls."""
        return sum(self.by_name.values())

    @property
    def syncs(self) -> int:
        """Calls of operators that read a tensor value on the host."""
        return sum(count for name, count in self.by_name.items() if name in SYNCING_OPERATORS)

    def minus(self, other: OperatorCounts) -> OperatorCounts:
        """The calls this step makes beyond `other` (e.g. an adapter's cost over the frozen base)."""
        return OperatorCounts(Counter({name: self.by_name[name] - other.by_name.get(name, 0) for name in self.by_name}))


def count_operators(step: Callable[[], object], *, warmup: int = 1) -> OperatorCounts:
    """Run `step` `warmup` times, then once under the profiler; count its aten operator calls."""
    for _ in range(warmup):
        step()
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as profile:
        step()
    return OperatorCounts(Counter(event.name for event in profile.events() if event.name.startswith("aten::")))
