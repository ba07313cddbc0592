"""The MoR training math in a few large operators: every role's LoRAs for every token, masked by role.

Each token should only use its own role's group. Instead of gathering each role's tokens (a host-side plan per
role, gathers, scatters and a dozen small operators per role), the down projection runs *all* roles' rows for every
token, every role's gate and top-k weights come from one batched set of operators (router logits padded to the
widest role), the token's role mask zeroes the other roles' LoRA coefficients, and one up projection per layer
gives the delta. The extra arithmetic (the other roles' rank blocks) is small next to the base layer; what it saves
is operators and host synchronisations: the operator count does not depend on the number of roles or on the role
layout of the batch, and nothing here reads a tensor value on the host, so the GPU queue never drains in a layer.

Sibling layers that read the same input (q/k/v, gate/up; see `mor.model.fusion`) run through one call: their down
rows are stacked into one matmul and their routing is batched, so a decoder block pays the fixed cost twice, not
five times. The backward is written by hand (`_FusedAdapter`): autograd would replay every small routing operator
and view; the chain rule of the same math takes a handful of large operators, with the routing gradient from
`mor.model.router`.

Rows of one layer's fused down projection, in order (`FusedLayout.row_order` indexes the layer's roles' `down`
parameters concatenated): the router rows of every role padded to `max_routed` (a padded logit gets -inf), one
shared-gate row per role (a role without a shared LoRA points at any row; its gate is never used), then every
role's LoRA A rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from .context import RoutingPlan, RoutingRecord
from .router import at_least_float32, route_top_k, route_top_k_backward, shared_gate, shared_gate_backward

__all__ = ["FusedLayout", "fused_deltas"]


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
    down_rows: tuple[int, ...]  # each role's `down` rows
    up_columns: tuple[int, ...]  # each role's `up` columns
    row_order: torch.Tensor  # (router_rows + num_roles + num_loras * rank,) into the concatenated `down` rows
    pad_bias: torch.Tensor  # (num_roles, max_routed) float32: 0, or -inf for a padded expert
    rank_mask: torch.Tensor  # (num_roles, max_top_k) float32: 1 for the role's own top-k ranks
    routed: torch.Tensor  # (num_roles,) float32: routed experts per role
    top_k: torch.Tensor  # (num_roles,) float32: effective top-k per role (at most `routed`)
    coefficient_index: torch.Tensor  # (num_loras,) into the (num_roles * (1 + max_routed)) gate/weight table
    selection: torch.Tensor  # (num_loras, table width) float32: one-hot of `coefficient_index` (its transpose)
    lora_role: torch.Tensor  # (num_loras,) long: the role of each LoRA
    _stacked_orders: dict[int, torch.Tensor] = field(default_factory=dict, compare=False, repr=False)

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
        table_width = num_roles * (1 + max_routed) if max_routed else num_roles
        selection = torch.zeros(len(coefficient), table_width)
        selection[torch.arange(len(coefficient)), torch.tensor(coefficient, dtype=torch.long)] = 1.0
        return FusedLayout(
            signature=(rank, tuple((routed, top_k, shared) for routed, top_k, shared, _ in roles)),
            num_roles=num_roles,
            max_routed=max_routed,
            max_top_k=max_top_k,
            rank=rank,
            num_loras=len(lora_role),
            router_rows=num_roles * max_routed,
            down_rows=tuple(rows for _, _, _, rows in roles),
            up_columns=tuple((int(shared) + routed) * rank for routed, _, shared, _ in roles),
            row_order=torch.tensor(router + gate + lora, dtype=torch.long, device=device),
            pad_bias=pad_bias.to(device),
            rank_mask=rank_mask.to(device),
            routed=torch.tensor([float(r) for r, _, _, _ in roles], device=device),
            top_k=torch.tensor([float(min(k, r)) for r, k, _, _ in roles], device=device),
            coefficient_index=torch.tensor(coefficient, dtype=torch.long, device=device),
            selection=selection.to(device),
            lora_role=torch.tensor(lora_role, dtype=torch.long, device=device),
        )

    @property
    def head_rows(self) -> int:
        """Router and gate rows before the LoRA rows."""
        return self.router_rows + self.num_roles

    @property
    def fused_rows(self) -> int:
        """Rows of one layer's fused down projection."""
        return self.head_rows + self.num_loras * self.rank

    def stacked_row_order(self, layers: int) -> torch.Tensor:
        """`row_order` for `layers` sibling layers whose `down` parameters are concatenated layer after layer."""
        order = self._stacked_orders.get(layers)
        if order is None:
            total = sum(self.down_rows)
            order = self._stacked_orders[layers] = torch.cat(
                [self.row_order + layer * total for layer in range(layers)]
            )
        return order


@dataclass(frozen=True)
class _PlanMasks:
    """What every layer of one role layout needs from a routing plan; computed once per plan (see `_plan_masks`)."""

    lora_mask: torch.Tensor  # (tokens, 1, num_loras): the scaling where the LoRA belongs to the token's role, else 0
    own: torch.Tensor  # (tokens, 1, num_roles, 1) float32: the token's role, one-hot
    balance_scale: torch.Tensor  # (num_roles, 1): routed / ((tokens * top_k) * tokens) of each role, 0 without tokens
    active: torch.Tensor  # (num_roles,) bool: the role has tokens and routed experts


def _plan_masks(plan: RoutingPlan, layout: FusedLayout, scaling: float) -> _PlanMasks:
    key = ("fused-masks", layout.signature, scaling)
    cached = plan.cache.get(key)
    if cached is None:
        roles = torch.arange(layout.num_roles, device=plan.role_ids.device)
        one_hot = (plan.role_ids.unsqueeze(1) == roles).to(torch.float32)  # no value check: no host sync
        tokens = one_hot.sum(0)
        balance = layout.routed / ((tokens * layout.top_k).clamp(min=1.0) * tokens.clamp(min=1.0))
        cached = plan.cache[key] = _PlanMasks(
            lora_mask=(one_hot.index_select(1, layout.lora_role) * scaling).unsqueeze(1),
            own=one_hot[:, None, :, None],
            balance_scale=balance.unsqueeze(-1),
            active=(tokens > 0) & (layout.routed > 0),
        )
    return cached


def _compute_dtype(x2d: torch.Tensor, parameter_dtype: torch.dtype) -> torch.dtype:
    """The matmul dtype: autocast's where it is on (the adapter keeps float32 master weights), else the adapter's."""
    device_type = x2d.device.type
    if torch.is_autocast_enabled(device_type):
        return torch.get_autocast_dtype(device_type)
    return parameter_dtype


def _cast(tensor: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    return tensor if tensor.dtype == dtype else tensor.to(dtype)


def _layer_rows(stacked: torch.Tensor, layer: int) -> torch.Tensor:
    """Layer `layer`'s `(tokens, features)` slice of a `(tokens, layers, features)` tensor (a view)."""
    return stacked.view(stacked.shape[0], -1) if stacked.shape[1] == 1 else stacked[:, layer]


class _FusedAdapter(torch.autograd.Function):
    """The MoR deltas of `layers` sibling layers reading the same input, with a hand-written backward.

    Inputs: `x2d (tokens, in)`, then every layer's roles' `down` parameters (layer after layer, roles in id order),
    then their `up` parameters in the same order. Outputs: one delta `(tokens, out)` per layer, then the balance
    losses `(layers, roles)` and expert counts `(layers, roles, max_routed)` (zeros unless `record`).
    Saves the input, the stacked weights, the LoRA rank activations and the routing values; the weighted rank
    activations are recomputed in backward.
    """

    @staticmethod
    def forward(
        ctx: Any,
        x2d: torch.Tensor,
        layout: FusedLayout,
        masks: _PlanMasks,
        layers: int,
        dropout: float,
        record: bool,
        *parameters: torch.Tensor,
    ) -> tuple[torch.Tensor, ...]:
        ctx.set_materialize_grads(False)
        roles = layout.num_roles
        downs, ups = parameters[: layers * roles], parameters[layers * roles :]
        parameter_dtype = downs[0].dtype
        dtype = _compute_dtype(x2d, parameter_dtype)
        tokens = x2d.shape[0]
        with torch.autocast(x2d.device.type, enabled=False):
            down = _cast(torch.cat(downs).index_select(0, layout.stacked_row_order(layers)), dtype)
            layer_ups = [_cast(torch.cat(ups[m * roles : (m + 1) * roles], dim=1), dtype) for m in range(layers)]
            inputs = _cast(x2d, dtype)
            keep_mask = None
            if dropout:  # one layer only (siblings share work only without dropout)
                keep_mask = torch.empty_like(inputs).bernoulli_(1.0 - dropout).div_(1.0 - dropout)
                head = torch.mm(inputs, down[: layout.head_rows].t())
                lora = torch.mm(inputs * keep_mask, down[layout.head_rows :].t())
                hidden = torch.cat([head, lora], dim=1).view(tokens, 1, -1)
            else:
                hidden = torch.mm(inputs, down.t()).view(tokens, layers, -1)
            router_logits, gate_logits, lora = hidden.split(
                [layout.router_rows, roles, layout.num_loras * layout.rank], dim=-1
            )
            gate = shared_gate(gate_logits)
            routed: tuple[torch.Tensor, ...] = ()
            balance = None
            if layout.max_routed:
                routing = route_top_k(
                    router_logits.view(tokens, layers, roles, layout.max_routed),
                    layout.max_top_k,
                    pad_bias=layout.pad_bias,
                    keep=layout.rank_mask,
                )
                routed = (routing.probs, routing.top_index, routing.top_weights, routing.top_sum)
                table = torch.cat([gate.unsqueeze(-1), routing.weights], dim=-1).view(tokens, layers, -1)
                if record:
                    kept = _cast(layout.rank_mask, routing.probs.dtype).expand(routing.top_index.shape)
                    assigned = torch.zeros_like(routing.probs).scatter_(-1, routing.top_index, kept)
                    counts = (assigned * masks.own).sum(0)
                    balance = counts * masks.balance_scale
                    aux = ((routing.probs * masks.own).sum(0) * balance).sum(-1)
            else:
                table = gate
            if balance is None:
                aux = torch.zeros(layers, roles, device=x2d.device)
                counts = torch.zeros(layers, roles, layout.max_routed, device=x2d.device)
            coefficient = _cast(table.index_select(-1, layout.coefficient_index) * masks.lora_mask, dtype)
            lora4 = lora.view(tokens, layers, layout.num_loras, layout.rank)
            weighted = (lora4 * coefficient.unsqueeze(-1)).view(tokens, layers, -1)
            deltas = [torch.mm(_layer_rows(weighted, m), up.t()) for m, up in enumerate(layer_ups)]
        ctx.mark_non_differentiable(counts)
        if balance is None:
            ctx.mark_non_differentiable(aux)
        ctx.layout, ctx.masks, ctx.layers, ctx.dtype = layout, masks, layers, dtype
        ctx.parameter_dtype, ctx.x_dtype = parameter_dtype, x2d.dtype
        ctx.has_routing, ctx.has_dropout, ctx.has_balance = bool(routed), keep_mask is not None, balance is not None
        extra = ((keep_mask,) if keep_mask is not None else ()) + ((balance,) if balance is not None else ())
        ctx.save_for_backward(inputs, down, lora4, coefficient, gate, *layer_ups, *routed, *extra)
        return (*deltas, aux, counts)

    @staticmethod
    def backward(ctx: Any, *grads: torch.Tensor | None) -> tuple[torch.Tensor | None, ...]:
        layout: FusedLayout = ctx.layout
        masks: _PlanMasks = ctx.masks
        layers, dtype = ctx.layers, ctx.dtype
        grad_deltas, grad_aux = grads[:layers], grads[layers]
        inputs, down, lora4, coefficient, gate, *rest = ctx.saved_tensors
        layer_ups, rest = rest[:layers], rest[layers:]
        routed, rest = (rest[:4], rest[4:]) if ctx.has_routing else ((), rest)
        keep_mask = rest[0] if ctx.has_dropout else None
        balance = rest[-1] if ctx.has_balance else None
        tokens, loras = inputs.shape[0], layout.num_loras
        with torch.autocast(inputs.device.type, enabled=False):
            coefficient4 = coefficient.unsqueeze(-1)
            weighted = (lora4 * coefficient4).view(tokens, layers, -1)
            grad_ups: list[torch.Tensor | None] = []
            grad_weighted_parts = []
            for m, (grad_delta, up) in enumerate(zip(grad_deltas, layer_ups, strict=False)):
                if grad_delta is None:  # this sibling's delta was not used: its gradient is 0
                    grad_ups.append(None)
                    grad_weighted_parts.append(weighted.new_zeros(tokens, weighted.shape[-1]))
                    continue
                grad_delta = _cast(grad_delta, dtype)
                grad_ups.append(torch.mm(grad_delta.t(), _layer_rows(weighted, m)))
                grad_weighted_parts.append(torch.mm(grad_delta, up))
            grad_weighted = grad_weighted_parts[0] if layers == 1 else torch.stack(grad_weighted_parts, dim=1)
            grad_weighted = grad_weighted.view(tokens, layers, loras, layout.rank)
            grad_lora = (grad_weighted * coefficient4).view(tokens, layers, -1)
            grad_coefficient = at_least_float32((grad_weighted * lora4).sum(dim=-1)) * masks.lora_mask
            grad_table = torch.mm(grad_coefficient.view(-1, loras), _cast(layout.selection, grad_coefficient.dtype))
            if routed:
                grad_table = grad_table.view(tokens, layers, layout.num_roles, -1)
                grad_probs = None
                if balance is not None and grad_aux is not None:
                    grad_probs = masks.own * (grad_aux.unsqueeze(-1) * balance)
                grad_router = route_top_k_backward(
                    *routed, grad_table[..., 1:], grad_probs=grad_probs, keep=layout.rank_mask
                )
                grad_head = torch.cat(
                    [grad_router.view(tokens, layers, -1), shared_gate_backward(gate, grad_table[..., 0])], dim=-1
                )
            else:
                grad_head = shared_gate_backward(gate, grad_table.view(tokens, layers, -1))
            grad_hidden = torch.cat([_cast(grad_head, dtype), grad_lora], dim=-1).view(tokens, -1)
            grad_x = None
            if keep_mask is None:
                if ctx.needs_input_grad[0]:
                    grad_x = torch.mm(grad_hidden, down)
                grad_down = torch.mm(grad_hidden.t(), inputs)
            else:
                head_rows = layout.head_rows
                grad_head_rows, grad_lora_rows = grad_hidden[:, :head_rows], grad_hidden[:, head_rows:]
                if ctx.needs_input_grad[0]:
                    grad_x = torch.mm(grad_head_rows, down[:head_rows]).addcmul_(
                        torch.mm(grad_lora_rows, down[head_rows:]), keep_mask
                    )
                grad_down = torch.cat(
                    [torch.mm(grad_head_rows.t(), inputs), torch.mm(grad_lora_rows.t(), inputs * keep_mask)]
                )
            grad_downs = torch.zeros(
                layers * sum(layout.down_rows), inputs.shape[1], dtype=ctx.parameter_dtype, device=inputs.device
            ).index_add_(0, layout.stacked_row_order(layers), _cast(grad_down, ctx.parameter_dtype))
            per_role_ups: list[torch.Tensor | None] = []
            for grad_up in grad_ups:
                if grad_up is None:
                    per_role_ups += [None] * layout.num_roles
                else:
                    per_role_ups += list(_cast(grad_up, ctx.parameter_dtype).split(layout.up_columns, dim=1))
            if grad_x is not None:
                grad_x = _cast(grad_x, ctx.x_dtype)
        return (grad_x, None, None, None, None, None, *grad_downs.split(list(layout.down_rows) * layers), *per_role_ups)


def fused_deltas(
    x2d: torch.Tensor,
    layers: Sequence[tuple[Sequence[torch.Tensor], Sequence[torch.Tensor]]],
    layout: FusedLayout,
    plan: RoutingPlan,
    *,
    scaling: float,
    dropout: float = 0.0,
    record_as: Sequence[str] | None = None,
) -> tuple[list[torch.Tensor], list[RoutingRecord]]:
    """The MoR delta `(tokens, out)` of each of `layers` (each its roles' `down` and `up` parameters, one layout)
    for the input `x2d`, every token through its own role's group; with `record_as` (the layers' names) also each
    layer's routing record (load-balancing losses, expert counts). Dropout needs a single layer."""
    if dropout and len(layers) != 1:
        raise ValueError("fused_deltas: dropout draws one mask per layer; pass one layer at a time")
    masks = _plan_masks(plan, layout, scaling)
    parameters = [down for downs, _ in layers for down in downs] + [up for _, ups in layers for up in ups]
    *deltas, aux, counts = _FusedAdapter.apply(
        x2d, layout, masks, len(layers), dropout, record_as is not None, *parameters
    )
    records = [
        RoutingRecord(layer=name, aux_loss=layer_aux, expert_counts=layer_counts, active=masks.active)
        for name, layer_aux, layer_counts in zip(record_as or (), aux.unbind(0), counts.unbind(0), strict=False)
    ]
    return deltas, records
