"""The MoR linear layer: a frozen base linear plus one LoRA group per role, each token using only its role's group.

For the tokens of role `g` the layer adds `scaling * (gate(u) * B_0 A_0 u + sum_{i in top-k} w_i(u) * B_i A_i u)`:
a sigmoid-gated shared LoRA and the router's top-k routed LoRAs with softmax weights renormalised over the top-k.

Layout of one role's parameters (torch layouts, A factors as rows, B factors as columns):

* `down` `(L*r + E + s, in)`: the A factors of the `L` LoRAs (shared first when present, then the `E` routed ones),
  then the `E` router rows, then the shared gate row (`s = 1` when the group has a shared LoRA).
* `up` `(out, L*r)`: the B factors in the same LoRA order.

Training runs one of two implementations of the same function (`MoRLinear.impl`, "auto" picks by device):

* fused (GPUs; `mor.model.fused`): every role's LoRAs for every token in one matmul pair, masked by role; no host
  synchronisation and a fixed, small operator count per layer, at the cost of the other roles' rank blocks.
* grouped (CPUs, where arithmetic rather than operator count sets the speed): described below.

Inference without gradients takes its own short path (`_add_inference`, sharing work between sibling projections).

The grouped implementation gathers each role's tokens once, runs one matmul to all of the role's ranks with the
router logits and gate fused in as extra output rows, weights the rank blocks, and runs one matmul back, added into
the base output in place. At rank 16 computing all of a role's experts for its tokens is cheaper than gathering the
tokens again per selected expert. The down projection is an autograd function that saves only the layer input
(already kept by the base linear) and re-gathers in backward, so the gathered copies never stay in memory.
"""

from __future__ import annotations

import math
from typing import Any, Literal, Sequence

import torch
import torch.nn.functional as F
from peft.tuners.tuners_utils import BaseTunerLayer
from torch import nn

from .config import MoRConfig, MoRConfigError, RoleConfig
from .context import RoleGroup, RoutingPlan, RoutingRecord, RoutingState
from .fused import FusedLayout, fused_forward
from .fusion import SharedInputGroup, down_project, weighted_ranks
from .losses import load_balancing_loss, orthogonality_loss
from .router import route_top_k, shared_gate

__all__ = ["ADAPTER_NAME", "Implementation", "MoRLinear", "RoleWeights"]

#: The name under which PEFT's tuner machinery knows the MoR adapter.
ADAPTER_NAME = "mor"

Implementation = Literal["auto", "fused", "grouped", "dense"]


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
        """LoRA init: A and router rows Kaiming-uniform (as `nn.Linear`), gate row and B zero, so the delta starts at 0."""
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


class _GatheredDown(torch.autograd.Function):
    """`h_g = x[tokens of g] @ W_g^T` for every role group, saving only `x` and re-gathering in backward."""

    @staticmethod
    def forward(ctx: Any, x2d: torch.Tensor, groups: Sequence[RoleGroup], *weights: torch.Tensor) -> tuple[torch.Tensor, ...]:
        outputs = []
        for group, weight in zip(groups, weights):
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
        for position, (group, weight, grad) in enumerate(zip(groups, weights, grads)):
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
        for group, delta in zip(groups, deltas):
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


class MoRLinear(nn.Module, BaseTunerLayer):
    """A frozen `nn.Linear` with a Mixture-of-Roles LoRA group per role; reads the role plan from its `RoutingState`."""

    adapter_layer_names = ("mor_roles",)
    other_param_names = ()

    def __init__(
        self,
        base_layer: nn.Linear,
        *,
        config: MoRConfig,
        routing: RoutingState,
        name: str,
        adapter_dtype: torch.dtype = torch.float32,
    ) -> None:
        nn.Module.__init__(self)
        if not isinstance(base_layer, nn.Linear):
            raise MoRConfigError(
                f"target_modules: {name!r} is a {type(base_layer).__name__}, MoR wraps torch.nn.Linear layers only; "
                f"remove it from target_modules"
            )
        self.base_layer = base_layer
        self.in_features = base_layer.in_features
        self.out_features = base_layer.out_features
        device = base_layer.weight.device
        self.mor_roles = nn.ModuleDict(
            {
                role_name: RoleWeights(
                    self.in_features, self.out_features, role, config.rank, dtype=adapter_dtype, device=device
                )
                for role_name, role in config.roles.items()
            }
        )
        self.rank = config.rank
        self.scaling = config.scaling
        self.dropout_p = config.dropout
        self.layer_name = name
        self.impl: Implementation = "auto"
        self._fused_layouts: dict[torch.device, FusedLayout] = {}
        self.shared_input_group: SharedInputGroup | None = None  # set by `link_shared_inputs`
        self._routing = routing
        self._active_adapter = ADAPTER_NAME
        self.merged_adapters = []

    # --- PEFT tuner-layer protocol -------------------------------------------------------------------------------

    def set_adapter(self, adapter_names: str | list[str], inference_mode: bool = False) -> None:
        """Make the role groups trainable: all of them for the MoR adapter name, else the named roles only."""
        names = [adapter_names] if isinstance(adapter_names, str) else list(adapter_names)
        trainable = set(self.mor_roles) if ADAPTER_NAME in names else set(names)
        for role_name, weights in self.mor_roles.items():
            weights.requires_grad_(role_name in trainable and not inference_mode)
        self._active_adapter = names

    def merge(self, safe_merge: bool = False, adapter_names: list[str] | None = None) -> None:
        """Not supported: routed, role-dependent experts cannot be folded into one weight."""
        raise NotImplementedError("MoR layers cannot be merged: the delta depends on each token's role and router")

    def unmerge(self) -> None:
        """Nothing to unmerge (MoR layers are never merged)."""

    # --- forward ----------------------------------------------------------------------------------------------------

    @property
    def role_weights(self) -> list[RoleWeights]:
        """Role groups in role-id order."""
        return list(self.mor_roles.values())  # type: ignore[arg-type]

    def forward(self, x: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        result = self.base_layer(x, *args, **kwargs)
        if self.disable_adapters:
            return result
        plan = self._routing.current()
        if plan is None:
            raise RuntimeError(
                f"MoR layer {self.layer_name} was called without role ids: call the MoRModel "
                f"(mor_model(input_ids=..., role_ids=...)) or mor_model.generate(...), not its base model directly; "
                f"for gradient checkpointing use mor_model.gradient_checkpointing_enable()"
            )
        x2d = x.reshape(-1, self.in_features)
        if x2d.shape[0] != plan.num_tokens:
            raise MoRConfigError(
                f"role_ids: got {plan.num_tokens} role ids but layer {self.layer_name} sees {x2d.shape[0]} tokens; "
                f"role_ids must have the shape of input_ids"
            )
        if self.impl == "dense":
            out2d = result.reshape(-1, self.out_features)
            self._add_dense(x2d, out2d, plan)
            return out2d.view(result.shape)
        if not result.is_contiguous():
            result = result.contiguous()
        if not torch.is_grad_enabled() and not self._routing.recording() and not (self.training and self.dropout_p):
            return self._add_inference(x, x2d, result, plan)
        if self.impl == "grouped" or (self.impl == "auto" and x2d.device.type == "cpu"):
            return self._add_grouped(x2d, result, plan)
        return self._add_fused(x2d, result, plan)

    def _add_inference(self, x: torch.Tensor, x2d: torch.Tensor, result: torch.Tensor, plan: RoutingPlan) -> torch.Tensor:
        """The grouped math without autograd or router records, in as few operators as it takes.

        Decoding runs one token per row, so per-operator overhead, not arithmetic, sets the speed: the top-k
        weights come from a softmax over the top-k logits (equal to renormalising the top-k probabilities), the
        scaling rides on the final `addmm_`, and a contiguous group is added into the base output in place. Layers
        linked in a `SharedInputGroup` (q/k/v, gate/up) share the down projection and the routing operators.
        """
        out2d = result.view(-1, self.out_features)
        roles = self.role_weights
        shared = self.shared_input_group.weighted(self, x, x2d, plan) if self.shared_input_group is not None else None
        for position, group in enumerate(plan.groups):
            role = roles[group.role]
            if shared is not None:
                weighted = shared[position]
            else:
                weighted = weighted_ranks(down_project(x2d, group, role.down), role)
            if weighted.dtype != out2d.dtype:
                weighted = weighted.to(out2d.dtype)
            up = role.up if role.up.dtype == out2d.dtype else role.up.to(out2d.dtype)
            if group.index is None:
                out2d[group.start : group.stop].addmm_(weighted, up.t(), alpha=self.scaling)
            else:
                out2d.index_add_(0, group.index, F.linear(weighted, up), alpha=self.scaling)
        return result

    def _add_grouped(self, x2d: torch.Tensor, result: torch.Tensor, plan: RoutingPlan) -> torch.Tensor:
        roles = self.role_weights
        groups = plan.groups
        weights = [roles[group.role] for group in groups]
        if self.training and self.dropout_p > 0:
            hidden = [self._down_with_dropout(group.select(x2d), role) for group, role in zip(groups, weights)]
        else:
            hidden = list(_GatheredDown.apply(x2d, groups, *[role.down for role in weights]))
        zero = self._absent_roles_zero(plan)
        if zero is not None:
            hidden[0] = hidden[0] + zero
        pending: dict[int, tuple[torch.Tensor, torch.Tensor]] | None = {} if self._routing.recording() else None
        deltas = [
            self._role_delta(h, role, group.role, pending).to(result.dtype)
            for group, role, h in zip(groups, weights, hidden)
        ]
        if pending is not None:
            self._flush_records(pending, x2d.device)
        return _AddIntoRows.apply(result, groups, *deltas)

    def _down_with_dropout(self, rows: torch.Tensor, role: RoleWeights) -> torch.Tensor:
        rows = rows.to(role.down.dtype)
        lora_hidden = F.linear(F.dropout(rows, self.dropout_p, training=True), role.lora_down)
        route_hidden = F.linear(rows, role.down[role.lora_rows :])
        return torch.cat([lora_hidden, route_hidden], dim=-1)

    def _absent_roles_zero(self, plan: RoutingPlan) -> torch.Tensor | None:
        """A zero that depends on every parameter of the roles absent from this batch.

        Adding it keeps every adapter parameter in the autograd graph, so DistributedDataParallel works with
        `find_unused_parameters=False` even when a rank's batch lacks a role (its gradient is then exactly 0).
        """
        if not torch.is_grad_enabled():
            return None
        present = plan.present_roles()
        terms = [
            param.sum()
            for role_id, role in enumerate(self.role_weights)
            if role_id not in present
            for param in (role.down, role.up)
            if param.requires_grad
        ]
        if not terms:
            return None
        return torch.stack(terms).sum() * 0.0

    def _role_delta(self, h: torch.Tensor, role: RoleWeights, role_id: int,
                    pending: dict[int, tuple[torch.Tensor, torch.Tensor]] | None) -> torch.Tensor:
        """From the fused down projection `h` of a role's tokens to their output delta `(tokens, out)`."""
        tokens = h.shape[0]
        coefficients = []
        if role.shared:
            coefficients.append(shared_gate(h[:, -1:]))
        if role.routed:
            routing = route_top_k(h[:, role.lora_rows : role.lora_rows + role.routed], role.top_k)
            coefficients.append(routing.weights)
            if pending is not None:
                self._record(role_id, role, routing.probs, routing.top_index, pending)
        coefficient = torch.cat(coefficients, dim=-1) if len(coefficients) > 1 else coefficients[0]
        coefficient = (coefficient * self.scaling).to(h.dtype)
        lora_hidden = h[:, : role.lora_rows].reshape(tokens, role.num_loras, role.rank)
        weighted = (lora_hidden * coefficient.unsqueeze(-1)).reshape(tokens, role.lora_rows)
        return F.linear(weighted, role.up)

    def _record(self, role_id: int, role: RoleWeights, probs: torch.Tensor, top_index: torch.Tensor,
                pending: dict[int, tuple[torch.Tensor, torch.Tensor]]) -> None:
        """Note one role's load-balancing loss and expert counts; `_flush_records` makes them the layer's record."""
        counts = torch.bincount(top_index.reshape(-1), minlength=role.routed)
        pending[role_id] = (load_balancing_loss(probs, top_index, role.routed, counts=counts), counts)

    def _flush_records(self, pending: dict[int, tuple[torch.Tensor, torch.Tensor]], device: torch.device) -> None:
        """One `RoutingRecord` of every role from the per-role values of `_record` (zeros for roles not noted)."""
        roles = self.role_weights
        widest = max((role.routed for role in roles), default=0)
        aux = torch.zeros(len(roles), dtype=torch.float32, device=device)
        counts = torch.zeros(len(roles), widest, dtype=torch.float32, device=device)
        active = torch.zeros(len(roles), dtype=torch.bool, device=device)
        if pending:
            ids = list(pending)
            aux = aux.index_put((torch.tensor(ids, device=device),), torch.stack([pending[i][0] for i in ids]).float())
            for role_id, (_, role_counts) in pending.items():
                counts[role_id, : role_counts.numel()] = role_counts.float()
                active[role_id] = True
        self._routing.add_record(RoutingRecord(layer=self.layer_name, aux_loss=aux, expert_counts=counts,
                                               active=active))

    def fused_layout(self, device: torch.device) -> FusedLayout:
        """This layer's `FusedLayout` on `device` (built on first use)."""
        layout = self._fused_layouts.get(device)
        if layout is None:
            roles = [(w.routed, w.top_k, w.shared, w.down.shape[0]) for w in self.role_weights]
            layout = self._fused_layouts[device] = FusedLayout.build(roles, self.rank, device)
        return layout

    def _add_fused(self, x2d: torch.Tensor, result: torch.Tensor, plan: RoutingPlan) -> torch.Tensor:
        """Training (and recorded) forward: every role's LoRAs in one matmul pair, masked by role (`mor.model.fused`).

        Every adapter parameter takes part, so DistributedDataParallel needs no unused-parameter search even when a
        batch lacks a role (that role's gradient is exactly 0).
        """
        roles = self.role_weights
        out2d, record = fused_forward(
            result.view(-1, self.out_features), x2d, [role.down for role in roles], [role.up for role in roles],
            self.fused_layout(x2d.device), plan, scaling=self.scaling,
            dropout=self.dropout_p if self.training else 0.0,
            record_as=self.layer_name if self._routing.recording() else None,
        )
        if record is not None:
            self._routing.add_record(record)
        return out2d.view(result.shape)

    def _add_dense(self, x2d: torch.Tensor, out2d: torch.Tensor, plan: RoutingPlan) -> None:
        """Reference-style math: every LoRA of every role for every token, weighted, then masked by role.

        Kept for benchmarks and as a readable statement of the math; the grouped path computes the same values.
        """
        pending: dict[int, tuple[torch.Tensor, torch.Tensor]] | None = {} if self._routing.recording() else None
        for role_id, role in enumerate(self.role_weights):
            rows = x2d.to(role.down.dtype)
            if self.training and self.dropout_p > 0:
                lora_in = F.dropout(rows, self.dropout_p, training=True)
            else:
                lora_in = rows
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
                if pending is not None and bool(mask.any()):
                    selected = mask.squeeze(-1)
                    self._record(role_id, role, routing.probs[selected], routing.top_index[selected], pending)
            coefficient = torch.cat(coefficients, dim=-1) * self.scaling
            delta = torch.einsum("tl,tlo->to", coefficient.to(per_lora.dtype), per_lora)
            out2d += (delta * mask).to(out2d.dtype)
        if pending is not None:
            self._flush_records(pending, x2d.device)

    def orth_loss(self) -> torch.Tensor:
        """Orthogonality loss summed over this layer's role groups."""
        losses = [role.orth_loss() for role in self.role_weights]
        return torch.stack(losses).sum()

    def extra_repr(self) -> str:
        roles = ", ".join(
            f"{name}: shared={w.shared} routed={w.routed} top_k={w.top_k}" for name, w in self.mor_roles.items()
        )
        return f"rank={self.rank}, scaling={self.scaling}, roles=({roles})"
