"""One role's LoRA group in one layer, as two fused parameters.

Layout of one role's parameters (torch layouts, A factors as rows, B factors as columns):

* `down` `(L*r + E + s, in)`: the A factors of the `L` LoRAs (shared first when present, then the `E` routed ones),
  then the `E` router rows, then the shared gate row (`s = 1` when the group has a shared LoRA).
* `up` `(out, L*r)`: the B factors in the same LoRA order.

Keeping the router and gate rows in `down` lets every implementation get the LoRA rank activations, router logits
and gate logit of a token from one matmul.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .config import RoleConfig
from .losses import orthogonality_loss

__all__ = ["RoleWeights"]


class RoleWeights(nn.Module):
    """One role's LoRA group in one layer: the fused `down` and `up` parameters (layout in the module docstring)."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        role: RoleConfig,
        rank: int,
        *,
        dtype: torch.dtype,
        device: torch.device,
    ) -> None:
        super().__init__()
        self.rank = rank
        self.shared = role.shared
        self.routed = role.routed
        self.top_k = min(role.top_k, role.routed)
        self.num_loras = role.num_loras
        self.lora_rows = self.num_loras * rank
        self.gate_rows = int(role.shared)
        rows = self.lora_rows + self.routed + self.gate_rows
        self.down = nn.Parameter(torch.empty(rows, in_features, dtype=dtype, device=device))
        self.up = nn.Parameter(torch.empty(out_features, self.lora_rows, dtype=dtype, device=device))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """LoRA init: A and router rows Kaiming-uniform (as `nn.Linear`), gate row and B zero (delta starts at 0)."""
        with torch.no_grad():
            nn.init.kaiming_uniform_(self.down[: self.lora_rows + self.routed], a=math.sqrt(5))
            if self.gate_rows:
                self.down[self.lora_rows :].zero_()
            self.up.zero_()

    @property
    def lora_down(self) -> torch.Tensor:
        """The A factors of all LoRAs stacked as rows `(L*r, in)`."""
        return self.down[: self.lora_rows]

    def lora_A(self, index: int) -> torch.Tensor:
        """A factor `(r, in)` of LoRA `index` (0 is the shared LoRA when the group has one)."""
        return self.down[index * self.rank : (index + 1) * self.rank]

    def lora_B(self, index: int) -> torch.Tensor:
        """B factor `(out, r)` of LoRA `index`."""
        return self.up[:, index * self.rank : (index + 1) * self.rank]

    @property
    def router_weight(self) -> torch.Tensor:
        """Router rows `(routed, in)`."""
        return self.down[self.lora_rows : self.lora_rows + self.routed]

    @property
    def gate_weight(self) -> torch.Tensor:
        """Shared-gate row `(1, in)` (empty without a shared LoRA)."""
        return self.down[self.lora_rows + self.routed :]

    def orth_loss(self) -> torch.Tensor:
        """Orthogonality loss between this group's LoRAs."""
        return orthogonality_loss(self.lora_down, self.up, self.rank)
