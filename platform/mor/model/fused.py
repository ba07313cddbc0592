"""The MoR training math in one matmul pair per layer: every role's LoRAs for every token, masked by role.

Each token should only use its own role's group. Instead of gathering each role's tokens (a host-side plan per
role, gathers, scatters and a dozen small operators per role), the layer runs the down projection of *all* roles'
rows for every token, computes every role's gate and top-k weights in one batched set of operators (router logits
padded to the widest role), zeroes the coefficients of the other roles' LoRAs with the token's role mask, and runs
one up projection added onto the base output (`addmm`). The extra arithmetic (the other roles' rank-16 blocks) is
small next to the base layer; what it saves is operators and host synchronisations: the operator count per layer
does not depend on the number of roles or on the role layout of the batch, and nothing here reads a tensor value
on the host, so the GPU queue never drains inside a layer.

Rows of the fused down projection, in order (`FusedLayout.row_order` indexes the roles' `down` parameters
concatenated): the router rows of every role padded to `max_routed` (a padded logit gets -inf), one shared-gate row
per role (a role without a shared LoRA points at any row; its gate is never used), then every role's LoRA A rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn.functional as F

from .context import RoutingPlan, RoutingRecord

__all__ = ["FusedLayout", "fused_forward"]


@dataclass(frozen=True)
class FusedLayout:
    """Where every role's rows and LoRA coefficients sit in the fused math (built once per role layout and device)."""

    signature: tuple[object, ...]  # the role layout and rank it was built from (a cache key)
    num_roles: int
    max_routed: int
    max_top_k: int
    rank: int
    num_loras: int
    router_rows: int  # num_roles * max_routed
    row_order: torch.Tensor  # (router_rows + num_roles + num_loras * rank,) into the concatenated `down` rows
    pad_bias: torch.Tensor  # (num_roles, max_routed) float32: 0, or -inf for a padded expert
    rank_mask: torch.Tensor  # (num_roles, max_top_k) float32: 1 for the role's own top-k ranks
    routed: torch.Tensor  # (num_roles,) float32: routed experts per role
    top_k: torch.Tensor  # (num_roles,) float32: effective top-k per role (at most `routed`)
    coefficient_index: torch.Tensor  # (num_loras,) into the (num_roles * (1 + max_routed)) gate/weight table
    lora_role: torch.Tensor  # (num_loras,) long: the role of each LoRA

    @staticmethod
    def build(roles: Sequence[tuple[int, int, bool, int]], rank: int, device: torch.device) -> FusedLayout:
        """From each role's `(routed, top_k, shared, down rows)` in role-id order."""
        num_roles = len(roles)
        max_routed = max((routed for routed, _, _, _ in roles), default=0)
        max_top_k = max((min(top_k, routed) for routed, top_k, _, _ in roles), default=0)
        router, gate, lora, coefficient, lora_role = [], [], [], [], []
        pad_bias = torch.zeros(num_roles, max_routed)
        rank_mask = torch.zeros(num_roles, max_top_k)
        offset = 0
        for role_id, (routed, top_k, shared, rows) in enumerate(roles):
            loras = int(shared) + routed
            lora_rows = loras * rank
            router += [offset + lora_rows + e if e < routed else offset for e in range(max_routed)]
            if routed:
                pad_bias[role_id, routed:] = float("-inf")
                rank_mask[role_id, : min(top_k, routed)] = 1.0
            elif max_top_k:
                rank_mask[role_id, 0] = 1.0  # never used; keeps its renormalisation free of 0/0
            gate.append(offset + lora_rows + routed if shared else offset)
            lora += list(range(offset, offset + lora_rows))
            table = role_id * (1 + max_routed)
            coefficient += ([table] if shared else []) + [table + 1 + e for e in range(routed)]
            lora_role += [role_id] * loras
            offset += rows
        return FusedLayout(
            signature=(rank, tuple((routed, top_k, shared) for routed, top_k, shared, _ in roles)),
            num_roles=num_roles,
            max_routed=max_routed,
            max_top_k=max_top_k,
            rank=rank,
            num_loras=len(lora_role),
            router_rows=num_roles * max_routed,
            row_order=torch.tensor(router + gate + lora, dtype=torch.long, device=device),
            pad_bias=pad_bias.to(device),
            rank_mask=rank_mask.to(device),
            routed=torch.tensor([float(r) for r, _, _, _ in roles], device=device),
            top_k=torch.tensor([float(min(k, r)) for r, k, _, _ in roles], device=device),
            coefficient_index=torch.tensor(coefficient, dtype=torch.long, device=device),
            lora_role=torch.tensor(lora_role, dtype=torch.long, device=device),
        )

    @property
    def head_rows(self) -> int:
        """Router and gate rows before the LoRA rows."""
        return self.router_rows + self.num_roles


def _float32(tensor: torch.Tensor) -> torch.Tensor:
    """`tensor` in float32 (routing math runs in float32), without an operator when it already is."""
    return tensor if tensor.dtype == torch.float32 else tensor.float()


@dataclass(frozen=True)
class _PlanMasks:
    """What every layer of one role layout needs from a routing plan; computed once per plan (see `_plan_masks`)."""

    lora_mask: torch.Tensor  # (tokens, num_loras): the scaling where the LoRA belongs to the token's role, else 0
    one_hot: torch.Tensor  # (tokens, num_roles) float32
    balance_scale: torch.Tensor  # (num_roles,): routed / ((tokens * top_k) * tokens) of each role, 0 without tokens
    active: torch.Tensor  # (num_roles,) bool: the role has tokens and routed experts


def _plan_masks(plan: RoutingPlan, layout: FusedLayout, scaling: float) -> _PlanMasks:
    key = ("fused-masks", layout.signature, scaling)
    cached = plan.cache.get(key)
    if cached is None:
        roles = torch.arange(layout.num_roles, device=plan.role_ids.device)
        one_hot = (plan.role_ids.unsqueeze(1) == roles).to(torch.float32)  # no value check: no host sync
        tokens = one_hot.sum(0)
        cached = plan.cache[key] = _PlanMasks(
            lora_mask=one_hot.index_select(1, layout.lora_role) * scaling,
            one_hot=one_hot,
            balance_scale=layout.routed / ((tokens * layout.top_k).clamp(min=1.0) * tokens.clamp(min=1.0)),
            active=(tokens > 0) & (layout.routed > 0),
        )
    return cached


def _router_record(probs: torch.Tensor, top_index: torch.Tensor, masks: _PlanMasks, layout: FusedLayout,
                   layer: str) -> RoutingRecord:
    """Switch-style balance loss `E * sum_i f_i * P_i` of every role over its own tokens, all roles at once.

    `f` (assignment fractions) carries no gradient, so the loss is `sum(probs * weight)` with a constant weight:
    one product and one sum on the gradient path.
    """
    with torch.no_grad():
        assigned = torch.zeros_like(probs).scatter_(-1, top_index, layout.rank_mask.expand(top_index.shape))
        own = masks.one_hot.unsqueeze(-1)
        counts = (assigned * own).sum(0)
        weight = own * (counts * masks.balance_scale.unsqueeze(-1))
    aux = (probs * weight).sum(dim=(0, 2))
    return RoutingRecord(layer=layer, aux_loss=aux, expert_counts=counts, active=masks.active)


def fused_forward(
    result2d: torch.Tensor,
    x2d: torch.Tensor,
    downs: Sequence[torch.Tensor],
    ups: Sequence[torch.Tensor],
    layout: FusedLayout,
    plan: RoutingPlan,
    *,
    scaling: float,
    dropout: float = 0.0,
    record_as: str | None = None,
) -> tuple[torch.Tensor, RoutingRecord | None]:
    """The base output `result2d (tokens, out)` plus every token's own-role MoR delta; with `record_as` (the layer's
    name) also the routing record of every role (load-balancing losses, expert counts)."""
    down = torch.cat(list(downs)).index_select(0, layout.row_order)
    up = torch.cat(list(ups), dim=1)
    inputs = x2d if x2d.dtype == down.dtype else x2d.to(down.dtype)
    head_rows = layout.head_rows
    lora_rows = layout.num_loras * layout.rank
    if dropout:
        head_down, lora_down = down.split([head_rows, lora_rows])
        head = F.linear(inputs, head_down)
        lora = F.linear(F.dropout(inputs, dropout, training=True), lora_down)
    else:
        head, lora = F.linear(inputs, down).split([head_rows, lora_rows], dim=1)
    tokens = x2d.shape[0]
    masks = _plan_masks(plan, layout, scaling)
    router_logits, gate_logits = _float32(head).split([layout.router_rows, layout.num_roles], dim=1)
    gate = torch.sigmoid(gate_logits).unsqueeze(-1)
    record: RoutingRecord | None = None
    if layout.max_routed:
        logits = router_logits.view(tokens, layout.num_roles, layout.max_routed)
        probs = torch.softmax(logits + layout.pad_bias, dim=-1)
        top_probs, top_index = probs.topk(layout.max_top_k, dim=-1)
        top_probs = top_probs * layout.rank_mask
        top_weights = top_probs / top_probs.sum(dim=-1, keepdim=True)
        routed = torch.zeros_like(probs).scatter(-1, top_index, top_weights)
        table = torch.cat([gate, routed], dim=-1).flatten(1)
        if record_as is not None:
            record = _router_record(probs, top_index, masks, layout, record_as)
    else:
        table = gate.flatten(1)
    coefficient = table.index_select(1, layout.coefficient_index) * masks.lora_mask
    if coefficient.dtype != lora.dtype:
        coefficient = coefficient.to(lora.dtype)
    weighted = (lora.view(tokens, layout.num_loras, layout.rank) * coefficient.unsqueeze(-1)).view(tokens, lora_rows)
    if weighted.dtype == result2d.dtype and up.dtype == result2d.dtype:
        return torch.addmm(result2d, weighted, up.t()), record
    return result2d + F.linear(weighted, up).to(result2d.dtype), record
