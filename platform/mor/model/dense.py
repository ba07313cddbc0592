"""The dense MoR math: every LoRA of every role for every token, weighted, then masked by role.

The most memory and arithmetic of all implementations (`set_impl("dense")`); kept as the benchmarks' reference and
as a readable statement of what the fast paths compute.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from .context import RoutingPlan
from .records import RoleRecords
from .router import route_top_k, shared_gate
from .weights import RoleWeights

__all__ = ["dense_add"]


def dense_add(
    out2d: torch.Tensor,
    x2d: torch.Tensor,
    roles: Sequence[RoleWeights],
    plan: RoutingPlan,
    *,
    scaling: float,
    dropout: float = 0.0,
    records: RoleRecords | None = None,
) -> None:
    """Add every token's own-role MoR delta into `out2d (tokens, out)` in place."""
    for role_id, role in enumerate(roles):
        rows = x2d.to(role.down.dtype)
        lora_in = F.dropout(rows, dropout, training=True) if dropout else rows
        mask = (plan.role_ids == role_id).unsqueeze(-1)
        factors_a = role.lora_down.reshape(role.num_loras, role.rank, -1)
        factors_b = role.up.reshape(-1, role.num_loras, role.rank)
        lora_hidden = torch.einsum("ti,lri->tlr", lora_in, factors_a)
        per_lora = torch.einsum("tlr,olr->tlo", lora_hidden, factors_b)  # each LoRA's output for each token
        coefficients = []
        if role.shared:
            coefficients.append(shared_gate(F.linear(rows, role.gate_weight)))
        if role.routed:
            routing = route_top_k(F.linear(rows, role.router_weight), role.top_k)
            coefficients.append(routing.weights)
            if records is not None and bool(mask.any()):
                selected = mask.squeeze(-1)
                records.note(role_id, routing.probs[selected], routing.top_index[selected])
        coefficient = torch.cat(coefficients, dim=-1) * scaling
        delta = torch.einsum("tl,tlo->to", coefficient.to(per_lora.dtype), per_lora)
        out2d += (delta * mask).to(out2d.dtype)
