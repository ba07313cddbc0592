"""Routing records of the per-role implementations (grouped, dense): one role at a time, then one record per layer."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .context import RoutingRecord
from .losses import load_balancing_loss

__all__ = ["RoleRecords"]


class RoleRecords:
    """Collects each routed role's load-balancing loss and expert counts in one layer's forward.

    `note` one role at a time; `record` gives the layer's `RoutingRecord` (zeros for roles not noted).
    """

    def __init__(self, layer: str, routed: Sequence[int]) -> None:
        self.layer = layer
        self.routed = list(routed)
        self._noted: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}

    def note(self, role_id: int, probs: torch.Tensor, top_index: torch.Tensor) -> None:
        """One role's router probabilities and top-k choices over its own tokens."""
        experts = self.routed[role_id]
        counts = torch.bincount(top_index.reshape(-1), minlength=experts)
        self._noted[role_id] = (load_balancing_loss(probs, top_index, experts, counts=counts), counts)

    def record(self, device: torch.device) -> RoutingRecord:
        """The layer's record of every role."""
        roles = len(self.routed)
        aux = torch.zeros(roles, dtype=torch.float32, device=device)
        counts = torch.zeros(roles, max(self.routed, default=0), dtype=torch.float32, device=device)
        active = torch.zeros(roles, dtype=torch.bool, device=device)
        if self._noted:
            ids = list(self._noted)
            aux = aux.index_put(
                (torch.tensor(ids, device=device),), torch.stack([self._noted[i][0] for i in ids]).float()
            )
            for role_id, (_, role_counts) in self._noted.items():
                counts[role_id, : role_counts.numel()] = role_counts.float()
                active[role_id] = True
        return RoutingRecord(layer=self.layer, aux_loss=aux, expert_counts=counts, active=active)
