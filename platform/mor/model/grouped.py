"""The grouped MoR training math (the CPU path, where arithmetic rather than operator count sets the speed).

Each role's tokens are gathered once, one matmul goes to all of the role's ranks with the router logits and gate
fused in as extra output rows, the rank blocks are weighted, and one matmul goes back, added into the base output
in place. At rank 16 computing all of a role's experts for its tokens is cheaper than gathering the tokens again per
selected expert. The down projection is an autograd function that saves only the layer input (already kept by the
base linear) and re-gathers in backward, so the gathered copies never stay in memory.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F

from .context import RoleGroup, RoutingPlan
from .records import RoleRecords
from .router import route_top_k, shared_gate
from .weights import RoleWeights

__all__ = ["grouped_add"]


class _GatheredDown(torch.autograd.Function):
    """`h_g = x[tokens of g] @ W_g^T` for every role group, saving only `x` and re-gathering in backward."""

    @staticmethod
    def forward(
        ctx: Any, x2d: torch.Tensor, groups: Sequence[RoleGroup], *weights: torch.Tensor
    ) -> tuple[torch.Tensor, ...]:
        outputs = []
        for group, weight in zip(groups, weights, strict=False):
            rows = group.select(x2d)
            outputs.append(F.linear(rows.to(weight.dtype), weight))
        ctx.groups = groups
        ctx.save_for_backward(x2d, *weights)
        return tuple(outputs)

    @staticmethod
    def backward(ctx: Any, *grads: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        x2d, *weights = ctx.saved_tensors
        groups: Sequence[RoleGroup] = ctx.groups
        grad_x = x2d.new_empty(x2d.shape) if ctx.needs_input_grad[0] else None
        covered = 0
        grad_weights: list[torch.Tensor | None] = []
        for position, (group, weight, grad) in enumerate(zip(groups, weights, grads, strict=False)):
            grad = grad.to(weight.dtype)  # under autocast the forward's matmul (and so its gradient) ran in bf16/fp16
            if grad_x is not None:
                rows_grad = (grad @ weight).to(grad_x.dtype)
                if group.index is None:
                    grad_x[group.start : group.stop] = rows_grad
                else:
                    grad_x.index_copy_(0, group.index, rows_grad)
                covered += group.count
            if ctx.needs_input_grad[2 + position]:
                rows = group.select(x2d).to(weight.dtype)
                grad_weights.append(grad.T @ rows)
            else:
                grad_weights.append(None)
        if grad_x is not None and covered != x2d.shape[0]:  # groups always partition the tokens; be safe anyway
            raise RuntimeError(f"MoR routing groups cover {covered} of {x2d.shape[0]} tokens")
        return (grad_x, None, *grad_weights)


class _AddIntoRows(torch.autograd.Function):
    """`out[tokens of g] += delta_g` for every role group, in place.

    A custom function because autograd's in-place `index_add_` / slice `add_` on the base output are slow on CPU
    (scatter-based, and a full copy of the output gradient per group); here the output gradient passes through
    unchanged and each delta's gradient is a slice or gather of it.
    """

    @staticmethod
    def forward(ctx: Any, out: torch.Tensor, groups: Sequence[RoleGroup], *deltas: torch.Tensor) -> torch.Tensor:
        out2d = out.view(-1, out.shape[-1])
        for group, delta in zip(groups, deltas, strict=False):
            if group.index is None:
                out2d[group.start : group.stop].add_(delta)
            else:
                out2d.index_add_(0, group.index, delta)
        ctx.groups = groups
        ctx.mark_dirty(out)
        return out

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        groups: Sequence[RoleGroup] = ctx.groups
        grad2d = grad.reshape(-1, grad.shape[-1])
        delta_grads = [
            grad2d[group.start : group.stop] if group.index is None else grad2d.index_select(0, group.index)
            for group in groups
        ]
        return (grad, None, *delta_grads)


def grouped_add(
    result: torch.Tensor,
    x2d: torch.Tensor,
    roles: Sequence[RoleWeights],
    plan: RoutingPlan,
    *,
    scaling: float,
    dropout: float = 0.0,
    records: RoleRecords | None = None,
) -> torch.Tensor:
    """`result` (the contiguous base output) plus every token's own-role MoR delta, added in place."""
    groups = plan.groups
    weights = [roles[group.role] for group in groups]
    if dropout:
        hidden = [
            _down_with_dropout(group.select(x2d), role, dropout) for group, role in zip(groups, weights, strict=False)
        ]
    else:
        hidden = list(_GatheredDown.apply(x2d, groups, *[role.down for role in weights]))
    zero = _absent_roles_zero(roles, plan)
    if zero is not None:
        hidden[0] = hidden[0] + zero
    deltas = [
        _role_delta(h, role, group.role, scaling, records).to(result.dtype)
        for group, role, h in zip(groups, weights, hidden, strict=False)
    ]
    return _AddIntoRows.apply(result, groups, *deltas)


def _down_with_dropout(rows: torch.Tensor, role: RoleWeights, dropout: float) -> torch.Tensor:
    rows = rows.to(role.down.dtype)
    lora_hidden = F.linear(F.dropout(rows, dropout, training=True), role.lora_down)
    route_hidden = F.linear(rows, role.down[role.lora_rows :])
    return torch.cat([lora_hidden, route_hidden], dim=-1)


def _absent_roles_zero(roles: Sequence[RoleWeights], plan: RoutingPlan) -> torch.Tensor | None:
    """A zero that depends on every parameter of the roles absent from this batch.

    Adding it keeps every adapter parameter in the autograd graph, so DistributedDataParallel works with
    `find_unused_parameters=False` even when a rank's batch lacks a role (its gradient is then exactly 0).
    """
    if not torch.is_grad_enabled():
        return None
    present = plan.present_roles()
    terms = [
        param.sum()
        for role_id, role in enumerate(roles)
        if role_id not in present
        for param in (role.down, role.up)
        if param.requires_grad
    ]
    if not terms:
        return None
    return torch.stack(terms).sum() * 0.0


def _role_delta(
    h: torch.Tensor, role: RoleWeights, role_id: int, scaling: float, records: RoleRecords | None
) -> torch.Tensor:
    """From the fused down projection `h` of a role's tokens to their output delta `(tokens, out)`."""
    tokens = h.shape[0]
    coefficients = []
    if role.shared:
        coefficients.append(shared_gate(h[:, -1:]))
    if role.routed:
        routing = route_top_k(h[:, role.lora_rows : role.lora_rows + role.routed], role.top_k)
        coefficients.append(routing.weights)
        if records is not None:
            records.note(role_id, routing.probs, routing.top_index)
    coefficient = torch.cat(coefficients, dim=-1) if len(coefficients) > 1 else coefficients[0]
    coefficient = (coefficient * scaling).to(h.dtype)
    lora_hidden = h[:, : role.lora_rows].reshape(tokens, role.num_loras, role.rank)
    weighted = (lora_hidden * coefficient.unsqueeze(-1)).reshape(tokens, role.lora_rows)
    return F.linear(weighted, role.up)
