"""The MoR linear layer: a frozen base linear plus one LoRA group per role, each token using only its role's group.

For the tokens of role `g` the layer adds `scaling * (gate(u) * B_0 A_0 u + sum_{i in top-k} w_i(u) * B_i A_i u)`:
a sigmoid-gated shared LoRA and the router's top-k routed LoRAs with softmax weights renormalised over the top-k
(`mor.model.router`). Each role's parameters are a `RoleWeights` (`mor.model.weights`).

This module holds the layer and its PEFT tuner protocol; the math lives in one module per implementation, all
computing the same function (`MoRLinear.impl`; "auto" picks by device):

* `mor.model.fused` (GPUs): every role's LoRAs for every token, masked by role, with a hand-written backward; no
  host synchronisation and a fixed, small operator count; siblings reading the same input (q/k/v, gate/up) share
  one call (`mor.model.fusion`).
* `mor.model.grouped` (CPUs, where arithmetic rather than operator count sets the speed): each role's tokens
  gathered, the least arithmetic.
* `mor.model.dense`: the reference math, for benchmarks.
* Inference without gradients or records takes `mor.model.fusion.inference_add`, sharing work between siblings.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from peft.tuners.tuners_utils import BaseTunerLayer
from torch import nn

from .config import MoRConfig, MoRConfigError
from .context import RoutingPlan, RoutingState
from .dense import dense_add
from .fused import FusedLayout, fused_deltas
from .fusion import SharedInputGroup, inference_add
from .grouped import grouped_add
from .records import RoleRecords
from .weights import RoleWeights

__all__ = ["ADAPTER_NAME", "Implementation", "MoRLinear"]

#: The name under which PEFT's tuner machinery knows the MoR adapter.
ADAPTER_NAME = "mor"

Implementation = Literal["auto", "fused", "grouped", "dense"]


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
                for role_name, role in config.groups.items()  # one group per role, or one for all (no role split)
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
        dropout = self.dropout_p if self.training else 0.0
        if self.impl == "dense":
            out2d = result.reshape(-1, self.out_features)
            records = self._new_records()
            dense_add(out2d, x2d, self.role_weights, plan, scaling=self.scaling, dropout=dropout, records=records)
            self._add_record(records, x2d.device)
            return out2d.view(result.shape)
        if not result.is_contiguous():
            result = result.contiguous()
        if not torch.is_grad_enabled() and not self._routing.recording() and not dropout:
            return inference_add(self, x, x2d, result, plan)
        if self.impl == "grouped" or (self.impl == "auto" and x2d.device.type == "cpu"):
            records = self._new_records()
            out = grouped_add(
                result, x2d, self.role_weights, plan, scaling=self.scaling, dropout=dropout, records=records
            )
            self._add_record(records, x2d.device)
            return out
        delta = self._fused_delta(x, x2d, plan, dropout).view(result.shape)
        return result + (delta if delta.dtype == result.dtype else delta.to(result.dtype))

    def _fused_delta(self, x: torch.Tensor, x2d: torch.Tensor, plan: RoutingPlan, dropout: float) -> torch.Tensor:
        """The fused math's delta `(tokens, out)`; siblings reading the same input share one call (no dropout)."""
        if self.shared_input_group is not None and not dropout:
            return self.shared_input_group.delta(self, x, x2d, plan, self._routing)
        roles = self.role_weights
        (delta,), records = fused_deltas(
            x2d,
            [([role.down for role in roles], [role.up for role in roles])],
            self.fused_layout(x2d.device),
            plan,
            scaling=self.scaling,
            dropout=dropout,
            record_as=[self.layer_name] if self._routing.recording() else None,
        )
        for record in records:
            self._routing.add_record(record)
        return delta

    def _new_records(self) -> RoleRecords | None:
        """A collector for this forward's routing record (None when the forward is not recorded)."""
        if not self._routing.recording():
            return None
        return RoleRecords(self.layer_name, [role.routed for role in self.role_weights])

    def _add_record(self, records: RoleRecords | None, device: torch.device) -> None:
        if records is not None:
            self._routing.add_record(records.record(device))

    def fused_layout(self, device: torch.device) -> FusedLayout:
        """This layer's `FusedLayout` on `device` (built on first use)."""
        layout = self._fused_layouts.get(device)
        if layout is None:
            roles = [(w.routed, w.top_k, w.shared, w.down.shape[0]) for w in self.role_weights]
            layout = self._fused_layouts[device] = FusedLayout.build(roles, self.rank, device)
        return layout

    def orth_loss(self) -> torch.Tensor:
        """Orthogonality loss summed over this layer's role groups."""
        losses = [role.orth_loss() for role in self.role_weights]
        return torch.stack(losses).sum()

    def extra_repr(self) -> str:
        roles = ", ".join(
            f"{name}: shared={w.shared} routed={w.routed} top_k={w.top_k}" for name, w in self.mor_roles.items()
        )
        return f"rank={self.rank}, scaling={self.scaling}, roles=({roles})"
