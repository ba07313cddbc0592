"""Inference-time fusion of MoR layers that read the same input (q/k/v projections, gate/up projections).

Decoding runs one token per row, so the MoR work of a layer costs what its operators cost to launch, not what
they compute. Layers that read the same input tensor can share that work: the first of them called with an input
runs one down projection for all of them (their fused `down` weights stacked), computes every layer's gate and
top-k weights in one batched set of operators, and leaves the other layers their weighted rank activations; each
layer then adds its own up projection into its output. Only inference uses it (no gradients, no router records);
the result equals the per-layer math.

A layer takes a left result only when it is called with the very same input tensor (identity and version
counter), for the same routing plan, in the same thread; anything else recomputes, so a model that calls the
projections in another order or on different inputs stays correct and only loses the speed-up.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from .context import RoleGroup, RoutingPlan

if TYPE_CHECKING:
    from .layer import MoRLinear, RoleWeights

__all__ = ["SHARED_INPUT_FAMILIES", "SharedInputGroup", "down_project", "link_shared_inputs", "weighted_ranks"]

#: Sibling projections that Hugging Face decoder layers apply to the same tensor.
SHARED_INPUT_FAMILIES: tuple[tuple[str, ...], ...] = (
    ("q_proj", "k_proj", "v_proj"),
    ("gate_proj", "up_proj"),
    ("w1", "w3"),
)


def down_project(x2d: torch.Tensor, group: RoleGroup, weight: torch.Tensor) -> torch.Tensor:
    """`group`'s rows of `x2d` times `weight^T`, in the weight's dtype."""
    rows = group.select(x2d)
    if rows.dtype != weight.dtype:
        rows = rows.to(weight.dtype)
    return F.linear(rows, weight)


def weighted_ranks(hidden: torch.Tensor, role: RoleWeights) -> torch.Tensor:
    """Rank activations of a role's LoRAs times their per-token weights (shared gate, top-k softmax; unscaled).

    `hidden` is the fused down projection `(tokens, rows)`, or `(tokens, layers, rows)` for several layers of the
    same role layout at once; the result is `(tokens, L*r)` or `(tokens, layers, L*r)`. The weights
    are computed in float32, as in `route_top_k` and `shared_gate`: the softmax over the top-k logits equals the
    renormalised top-k of the full softmax.
    """
    lead = hidden.shape[:-1]
    coefficient = torch.zeros(*lead, role.num_loras, dtype=torch.float32, device=hidden.device)
    if role.shared:
        coefficient[..., :1] = torch.sigmoid(hidden[..., -1:].float())
    if role.routed:
        logits = hidden[..., role.lora_rows : role.lora_rows + role.routed].float()
        routed = coefficient[..., role.gate_rows :]
        if role.top_k >= role.routed:
            routed.copy_(torch.softmax(logits, dim=-1))
        else:
            top_logits, top_index = logits.topk(role.top_k, dim=-1)
            routed.scatter_(-1, top_index, torch.softmax(top_logits, dim=-1))
    lora_hidden = hidden[..., : role.lora_rows].unflatten(-1, (role.num_loras, role.rank))
    return (lora_hidden * coefficient.unsqueeze(-1)).flatten(-2)


def _version_of(tensor: torch.Tensor) -> int:
    """The tensor's in-place version counter (inference tensors keep none; -1 for them)."""
    return -1 if tensor.is_inference() else tensor._version


@dataclass
class _Pending:
    """What the first layer called with `inputs` left for its siblings: per sibling, per plan group."""

    inputs: torch.Tensor
    version: int
    plan: RoutingPlan
    results: dict[int, list[torch.Tensor]] = field(default_factory=dict)


class SharedInputGroup:
    """MoR layers of one decoder block that read the same input tensor (see the module docstring)."""

    def __init__(self, layers: Sequence[MoRLinear]) -> None:
        self.layers = list(layers)
        self._reset()

    def _reset(self) -> None:
        self._local = threading.local()
        self._lock = threading.Lock()
        self._stacked: dict[str, tuple[tuple[tuple[int, int], ...], torch.Tensor]] = {}
        self._position: dict[int, int] | None = None  # built on first use: layers may still be unpickling here

    def __getstate__(self) -> dict[str, object]:
        # Copies and pickles keep the layers; thread-local results, the lock and the stacked weights start afresh.
        return {"layers": self.layers}

    def __setstate__(self, state: dict[str, object]) -> None:
        self.layers = list(state["layers"])  # type: ignore[call-overload]
        self._reset()

    def _stacked_down(self, role_name: str) -> torch.Tensor:
        """The siblings' `down` weights of one role stacked `(layers * rows, in)`, rebuilt when any of them changes."""
        downs = [layer.mor_roles[role_name].down for layer in self.layers]
        key = tuple((down.data_ptr(), down._version) for down in downs)
        cached = self._stacked.get(role_name)
        if cached is not None and cached[0] == key:
            return cached[1]
        with self._lock:
            stacked = torch.cat([down.detach() for down in downs], dim=0)
            self._stacked[role_name] = (key, stacked)
        return stacked

    def weighted(self, layer: MoRLinear, inputs: torch.Tensor, x2d: torch.Tensor, plan: RoutingPlan) -> list[torch.Tensor]:
        """`layer`'s weighted rank activations, one per plan group: left by a sibling, or computed for all now."""
        if self._position is None:
            self._position = {id(member): index for index, member in enumerate(self.layers)}
        position = self._position[id(layer)]
        pending: _Pending | None = getattr(self._local, "pending", None)
        if (
            pending is not None
            and pending.inputs is inputs
            and pending.version == _version_of(inputs)
            and pending.plan is plan
            and position in pending.results
        ):
            result = pending.results.pop(position)
            if not pending.results:
                self._local.pending = None
            return result
        computed = self._compute(x2d, plan)
        mine = computed.pop(position)
        self._local.pending = _Pending(inputs=inputs, version=_version_of(inputs), plan=plan, results=computed)
        return mine

    def _compute(self, x2d: torch.Tensor, plan: RoutingPlan) -> dict[int, list[torch.Tensor]]:
        count = len(self.layers)
        results: dict[int, list[torch.Tensor]] = {index: [] for index in range(count)}
        first = self.layers[0]
        for group in plan.groups:
            role_name = list(first.mor_roles)[group.role]
            role = first.mor_roles[role_name]
            hidden = down_project(x2d, group, self._stacked_down(role_name)).view(group.count, count, -1)
            weighted = weighted_ranks(hidden, role)
            for index in range(count):
                results[index].append(weighted[:, index])
        return results


def _compatible(layers: Sequence[MoRLinear]) -> bool:
    first = layers[0]
    return all(
        layer.in_features == first.in_features
        and layer.rank == first.rank
        and list(layer.mor_roles) == list(first.mor_roles)
        and all(
            layer.mor_roles[name].down.shape == first.mor_roles[name].down.shape
            and layer.mor_roles[name].down.dtype == first.mor_roles[name].down.dtype
            for name in first.mor_roles
        )
        for layer in layers
    )


def link_shared_inputs(layers: Iterable[tuple[str, MoRLinear]]) -> list[SharedInputGroup]:
    """Group `(name, layer)` pairs into `SHARED_INPUT_FAMILIES` per parent module and link each layer to its group.

    Two or more members of a family that are MoR layers of one role layout form a group; returns the groups.
    """
    by_parent: dict[str, dict[str, MoRLinear]] = {}
    for name, layer in layers:
        parent, _, leaf = name.rpartition(".")
        by_parent.setdefault(parent, {})[leaf] = layer
        layer.shared_input_group = None
    groups: list[SharedInputGroup] = []
    for children in by_parent.values():
        for family in SHARED_INPUT_FAMILIES:
            members = [children[leaf] for leaf in family if leaf in children]
            if len(members) < 2 or not _compatible(members):
                continue
            group = SharedInputGroup(members)
            for member in members:
                member.shared_input_group = group
            groups.append(group)
    return groups
