"""Work shared by MoR layers that read the same input (q/k/v projections, gate/up projections), and inference.

Layers that read the same input tensor can share their MoR work: the first of them called with an input computes
it for all of them and leaves the others their part; each then adds its own. In training (the fused math) the
siblings' down rows are stacked into one matmul and their routing is batched (`mor.model.fused`); in inference
(no gradients, no router records) they share the down projection and the routing operators, and each adds its own
up projection. Decoding runs one token per row, so the MoR work costs what its operators cost to launch, not what
they compute: sharing it is most of what makes decoding fast.

A layer takes a left result only when it is called with the very same input tensor (identity and version
counter), for the same routing plan, in the same thread, for the same kind of work; anything else recomputes, so
a model that calls the projections in another order or on different inputs stays correct and only loses the
speed-up.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import torch
import torch.nn.functional as F
from torch import nn

from .context import RoleGroup, RoutingPlan, RoutingState
from .fused import FusedLayout, fused_deltas
from .router import shared_gate, top_k_weights
from .weights import RoleWeights

__all__ = [
    "SHARED_INPUT_FAMILIES",
    "SharedInputGroup",
    "down_project",
    "inference_add",
    "link_shared_inputs",
    "weighted_ranks",
]

#: Sibling projections that Hugging Face decoder layers apply to the same tensor.
SHARED_INPUT_FAMILIES: tuple[tuple[str, ...], ...] = (
    ("q_proj", "k_proj", "v_proj"),
    ("gate_proj", "up_proj"),
    ("w1", "w3"),
)


class RoleLayer(Protocol):
    """What sharing needs of a MoR layer (`mor.model.MoRLinear`)."""

    mor_roles: nn.ModuleDict
    in_features: int
    out_features: int
    rank: int
    scaling: float
    layer_name: str
    shared_input_group: SharedInputGroup | None

    @property
    def role_weights(self) -> list[RoleWeights]: ...

    def fused_layout(self, device: torch.device) -> FusedLayout: ...


def down_project(x2d: torch.Tensor, group: RoleGroup, weight: torch.Tensor) -> torch.Tensor:
    """`group`'s rows of `x2d` times `weight^T`, in the weight's dtype."""
    rows = group.select(x2d)
    if rows.dtype != weight.dtype:
        rows = rows.to(weight.dtype)
    return F.linear(rows, weight)


def weighted_ranks(hidden: torch.Tensor, role: RoleWeights) -> torch.Tensor:
    """Rank activations of a role's LoRAs times their per-token weights (shared gate, top-k; unscaled).

    `hidden` is the fused down projection `(tokens, rows)`, or `(tokens, layers, rows)` for several layers of the
    same role layout at once; the result is `(tokens, L*r)` or `(tokens, layers, L*r)`.
    """
    coefficients = []
    if role.shared:
        coefficients.append(shared_gate(hidden[..., -1:]))
    if role.routed:
        coefficients.append(top_k_weights(hidden[..., role.lora_rows : role.lora_rows + role.routed], role.top_k))
    coefficient = torch.cat(coefficients, dim=-1) if len(coefficients) > 1 else coefficients[0]
    lora_hidden = hidden[..., : role.lora_rows].unflatten(-1, (role.num_loras, role.rank))
    return (lora_hidden * coefficient.unsqueeze(-1)).flatten(-2)


def inference_add(
    layer: RoleLayer, x: torch.Tensor, x2d: torch.Tensor, result: torch.Tensor, plan: RoutingPlan
) -> torch.Tensor:
    """`result` (the contiguous base output) plus the MoR delta, without autograd or router records, in place.

    Decoding runs one token per row, so per-operator overhead, not arithmetic, sets the speed: the scaling rides on
    the final `addmm_`, a contiguous group is added into the base output in place, and linked siblings
    (`SharedInputGroup`) share the down projection and the routing operators.
    """
    out2d = result.view(-1, layer.out_features)
    roles = layer.role_weights
    group = layer.shared_input_group
    shared = group.weighted(layer, x, x2d, plan) if group is not None else None
    for position, role_group in enumerate(plan.groups):
        role = roles[role_group.role]
        if shared is not None:
            weighted = shared[position]
        else:
            weighted = weighted_ranks(down_project(x2d, role_group, role.down), role)
        if weighted.dtype != out2d.dtype:
            weighted = weighted.to(out2d.dtype)
        up = role.up if role.up.dtype == out2d.dtype else role.up.to(out2d.dtype)
        if role_group.index is None:
            out2d[role_group.start : role_group.stop].addmm_(weighted, up.t(), alpha=layer.scaling)
        else:
            out2d.index_add_(0, role_group.index, F.linear(weighted, up), alpha=layer.scaling)
    return result


def _version_of(tensor: torch.Tensor) -> int:
    """The tensor's in-place version counter (inference tensors keep none; -1 for them)."""
    return -1 if tensor.is_inference() else tensor._version


@dataclass
class _Pending:
    """What the first layer called with `inputs` left for its siblings, by sibling position."""

    kind: str  # "weighted" (inference) or "delta" (training)
    inputs: torch.Tensor
    version: int
    plan: RoutingPlan
    results: dict[int, object] = field(default_factory=dict)


class SharedInputGroup:
    """MoR layers of one decoder block that read the same input tensor (see the module docstring)."""

    def __init__(self, layers: Sequence[RoleLayer]) -> None:
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

    def _take(self, kind: str, layer: RoleLayer, inputs: torch.Tensor, plan: RoutingPlan) -> tuple[int, object]:
        """`layer`'s position, and what a sibling left for it (None when nothing matching is left)."""
        if self._position is None:
            self._position = {id(member): index for index, member in enumerate(self.layers)}
        position = self._position[id(layer)]
        pending: _Pending | None = getattr(self._local, "pending", None)
        if (
            pending is not None
            and pending.kind == kind
            and pending.inputs is inputs
            and pending.version == _version_of(inputs)
            and pending.plan is plan
            and position in pending.results
        ):
            result = pending.results.pop(position)
            if not pending.results:
                self._local.pending = None
            return position, result
        return position, None

    def _leave(self, kind: str, inputs: torch.Tensor, plan: RoutingPlan, results: dict[int, object]) -> None:
        self._local.pending = _Pending(
            kind=kind, inputs=inputs, version=_version_of(inputs), plan=plan, results=results
        )

    def delta(
        self, layer: RoleLayer, inputs: torch.Tensor, x2d: torch.Tensor, plan: RoutingPlan, routing: RoutingState
    ) -> torch.Tensor:
        """`layer`'s training delta (the fused math, no dropout): left by a sibling, or computed for all now.

        The siblings' routing records are added to `routing` when they are computed.
        """
        position, left = self._take("delta", layer, inputs, plan)
        if left is not None:
            return left  # type: ignore[return-value]
        first = self.layers[0]
        deltas, records = fused_deltas(
            x2d,
            [
                ([role.down for role in member.role_weights], [role.up for role in member.role_weights])
                for member in self.layers
            ],
            first.fused_layout(x2d.device),
            plan,
            scaling=first.scaling,
            record_as=[member.layer_name for member in self.layers] if routing.recording() else None,
        )
        for record in records:
            routing.add_record(record)
        mine = deltas.pop(position)
        others = [index for index in range(len(self.layers)) if index != position]
        self._leave("delta", inputs, plan, dict(zip(others, deltas, strict=False)))
        return mine

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

    def weighted(
        self, layer: RoleLayer, inputs: torch.Tensor, x2d: torch.Tensor, plan: RoutingPlan
    ) -> list[torch.Tensor]:
        """`layer`'s weighted rank activations, one per plan group: left by a sibling, or computed for all now."""
        position, left = self._take("weighted", layer, inputs, plan)
        if left is not None:
            return left  # type: ignore[return-value]
        computed = self._compute(x2d, plan)
        mine = computed.pop(position)
        self._leave("weighted", inputs, plan, dict(computed))
        return mine

    def _compute(self, x2d: torch.Tensor, plan: RoutingPlan) -> dict[int, list[torch.Tensor]]:
        count = len(self.layers)
        results: dict[int, list[torch.Tensor]] = {index: [] for index in range(count)}
        first = self.layers[0]
        names = list(first.mor_roles)
        for group in plan.groups:
            role = first.mor_roles[names[group.role]]
            hidden = down_project(x2d, group, self._stacked_down(names[group.role])).view(group.count, count, -1)
            weighted = weighted_ranks(hidden, role)  # type: ignore[arg-type]
            for index in range(count):
                results[index].append(weighted[:, index])
        return results


def _compatible(layers: Sequence[RoleLayer]) -> bool:
    first = layers[0]
    return all(
        layer.in_features == first.in_features
        and layer.rank == first.rank
        and layer.scaling == first.scaling
        and list(layer.mor_roles) == list(first.mor_roles)
        and all(
            layer.mor_roles[name].down.shape == first.mor_roles[name].down.shape
            and layer.mor_roles[name].down.dtype == first.mor_roles[name].down.dtype
            and layer.mor_roles[name].up.dtype == first.mor_roles[name].up.dtype
            for name in first.mor_roles
        )
        for layer in layers
    )


def link_shared_inputs(layers: Iterable[tuple[str, RoleLayer]]) -> list[SharedInputGroup]:
    """Group `(name, layer)` pairs into `SHARED_INPUT_FAMILIES` per parent module and link each layer to its group.

    Two or more members of a family that are MoR layers of one role layout form a group; returns the groups.
    """
    by_parent: dict[str, dict[str, RoleLayer]] = {}
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
