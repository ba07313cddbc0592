"""Per-call routing context: which tokens belong to which role, visible to every MoR layer of one model.

Thread-safety: a `RoutingState` belongs to one `MoRModel` and keeps the current plan in a `threading.local`, so
two threads running forward passes of the same model at the same time each see their own role ids. A plan is set
for exactly one forward call (`RoutingState.activate`) and removed afterwards, so nothing leaks into the next call.
Within a thread, plans nest as a stack (a forward inside a forward restores the outer plan when it returns).
The per-call records (load-balancing terms, expert counts) live in the same thread-local slot: `aux_loss()` and
`router_stats()` read those of the last recorded forward of the calling thread.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import Any

import torch

from .config import MoRConfigError

__all__ = ["RoleGroup", "RoutingPlan", "RoutingRecord", "RoutingState", "build_routing_plan"]


@dataclass(frozen=True)
class RoleGroup:
    """The tokens of one role in the flattened `(batch * seq)` order: a contiguous range or an index tensor."""

    role: int
    count: int
    start: int
    stop: int
    index: torch.Tensor | None  # None when the tokens are exactly start..stop-1

    def select(self, flat: torch.Tensor) -> torch.Tensor:
        """This role's rows of a `(tokens, features)` tensor (a view when contiguous, else a gathered copy)."""
        if self.index is None:
            return flat[self.start : self.stop]
        return flat.index_select(0, self.index)


@dataclass(frozen=True)
class RoutingPlan:
    """The role of every token of one forward call, shared by all MoR layers.

    The fused training path needs only `role_ids`; the role groups (a host-side split of the tokens by role, used by
    the inference path) are computed on first use, so a training forward reads tensor values on the host once (the
    range check), not once per role.
    """

    num_tokens: int
    num_roles: int
    role_ids: torch.Tensor  # flat (num_tokens,), on the hidden states' device
    single_role: int | None = None  # the role of every token, when known to be only one
    cache: dict[object, Any] = field(default_factory=dict, compare=False, repr=False)  # per-plan values layers share

    @property
    def groups(self) -> tuple[RoleGroup, ...]:
        """The tokens of each present role, in role-id order (contiguous ranges where possible)."""
        groups = self.cache.get("groups")
        if groups is None:
            groups = self.cache["groups"] = _group_by_role(self.role_ids, self.num_roles, self.single_role)
        return groups

    def present_roles(self) -> set[int]:
        """Ids of the roles that have at least one token."""
        return {group.role for group in self.groups}


def _group_by_role(flat: torch.Tensor, num_roles: int, single_role: int | None) -> tuple[RoleGroup, ...]:
    num_tokens = flat.numel()
    if single_role is not None:
        return (RoleGroup(role=single_role, count=num_tokens, start=0, stop=num_tokens, index=None),)
    groups: list[RoleGroup] = []
    counts = torch.bincount(flat, minlength=num_roles).tolist()
    order = torch.argsort(flat, stable=True)
    offset = 0
    for role, count in enumerate(counts):
        if not count:
            continue
        index = order[offset : offset + count]
        offset += count
        first, last = (int(value) for value in index[[0, -1]].tolist())
        contiguous = last - first + 1 == count
        groups.append(
            RoleGroup(role=role, count=count, start=first, stop=last + 1, index=None if contiguous else index)
        )
    return tuple(groups)


@dataclass
class RoutingRecord:
    """What one MoR layer's routers did in the last recorded forward, every role at once."""

    layer: str
    aux_loss: torch.Tensor  # (roles,): each role's load-balancing loss over its own tokens (0 when inactive)
    expert_counts: torch.Tensor  # (roles, max routed): top-k assignments per expert, detached
    active: torch.Tensor  # (roles,) bool: the role had tokens and routed experts


def build_routing_plan(
    role_ids: torch.Tensor, num_roles: int, device: torch.device | None = None, *, one_group: bool = False
) -> RoutingPlan:
    """Group the tokens by role; raises `MoRConfigError` for ids outside `0..num_roles-1`.

    `one_group`: every token goes to group 0 whatever its role (the layers hold one LoRA group for all roles).
    """
    if role_ids.dtype in (torch.bool,) or role_ids.is_floating_point() or role_ids.is_complex():
        raise MoRConfigError(f"role_ids: got dtype {role_ids.dtype}, must be an integer tensor (torch.long)")
    flat = role_ids.reshape(-1).to(torch.long)
    num_tokens = flat.numel()
    if num_tokens == 0:
        raise MoRConfigError("role_ids: got an empty tensor, must hold one role id per token")
    low, high = torch.stack([flat.min(), flat.max()]).tolist()  # the one host read of a training forward
    if low < 0 or high >= num_roles:
        bad = low if low < 0 else high
        raise MoRConfigError(
            f"role_ids: got value {bad}, must be in 0..{num_roles - 1} (one id per configured role); "
            f"map each token to cfg.role_id(role_name)"
        )
    flat = flat.to(device or role_ids.device)
    if one_group:
        return RoutingPlan(num_tokens=num_tokens, num_roles=1, role_ids=torch.zeros_like(flat), single_role=0)
    return RoutingPlan(
        num_tokens=num_tokens, num_roles=num_roles, role_ids=flat, single_role=low if low == high else None
    )


@dataclass
class _ThreadSlot:
    plans: list[RoutingPlan] = field(default_factory=list)
    recording: list[str] = field(default_factory=list)  # "keep", "discard" or "off" per pushed plan
    records: list[RoutingRecord] = field(default_factory=list)
    generation: list[Any] = field(default_factory=list)
    step_pushed: list[bool] = field(default_factory=list)


class RoutingState:
    """The routing context shared by one model's MoR layers (see the module docstring for thread-safety)."""

    def __init__(self) -> None:
        self._local = threading.local()

    def __reduce__(self) -> tuple[Callable[[], RoutingState], tuple[()]]:
        # A copied or pickled model gets a fresh, empty context (thread-locals cannot be copied).
        return (RoutingState, ())

    def _slot(self) -> _ThreadSlot:
        slot = getattr(self._local, "slot", None)
        if slot is None:
            slot = _ThreadSlot()
            self._local.slot = slot
        return slot

    def push(self, plan: RoutingPlan, *, record: bool, discard_records: bool = False) -> None:
        """Make `plan` current in this thread until the matching `pop` (prefer `activate`).

        With `record`, the layers compute their router losses and statistics; they replace the thread's records
        unless `discard_records` (used by checkpoint recomputation, which must repeat the same operations).
        """
        slot = self._slot()
        mode = "off"
        if record:
            mode = "discard" if discard_records else "keep"
            if mode == "keep":
                slot.records = []
        slot.plans.append(plan)
        slot.recording.append(mode)

    def pop(self) -> None:
        """Remove the plan set by the last `push` of this thread."""
        slot = self._slot()
        slot.plans.pop()
        slot.recording.pop()

    @contextmanager
    def activate(self, plan: RoutingPlan, *, record: bool, discard_records: bool = False) -> Iterator[RoutingPlan]:
        """Make `plan` the current one in this thread for the duration of the block."""
        self.push(plan, record=record, discard_records=discard_records)
        try:
            yield plan
        finally:
            self.pop()

    def current(self) -> RoutingPlan | None:
        """The plan of the forward call running in this thread, if any."""
        plans = self._slot().plans
        return plans[-1] if plans else None

    def recording(self) -> bool:
        """Whether the current forward records router losses and statistics."""
        modes = self._slot().recording
        return bool(modes) and modes[-1] != "off"

    def add_record(self, record: RoutingRecord) -> None:
        """Store one layer/role routing record for the current forward of this thread."""
        slot = self._slot()
        if slot.recording and slot.recording[-1] == "keep":
            slot.records.append(record)

    def records(self) -> list[RoutingRecord]:
        """Records of the last recorded forward of this thread."""
        return list(self._slot().records)

    @contextmanager
    def generating(self, schedule: Any) -> Iterator[None]:
        """Mark this thread as inside `MoRModel.generate` with a role schedule for its decoding steps."""
        slot = self._slot()
        slot.generation.append(schedule)
        try:
            yield
        finally:
            slot.generation.pop()

    def generation_schedule(self) -> Any | None:
        """The role schedule of the `generate` call running in this thread, if any."""
        schedules = self._slot().generation
        return schedules[-1] if schedules else None

    def enter_step(self, make_plan: Callable[[], RoutingPlan]) -> None:
        """Start one base-model call inside `generate`: push the plan `make_plan()` builds for this step."""
        slot = self._slot()
        slot.step_pushed.append(False)  # first, so exit_step stays balanced if make_plan raises
        self.push(make_plan(), record=False)
        slot.step_pushed[-1] = True

    def exit_step(self) -> None:
        """End the base-model call started by `enter_step` (also after an error)."""
        slot = self._slot()
        if slot.step_pushed and slot.step_pushed.pop():
            self.pop()

    def checkpoint_contexts(self) -> tuple[AbstractContextManager[Any], AbstractContextManager[Any]]:
        """`context_fn` for `torch.utils.checkpoint`: the recomputation sees the plan of the original forward.

        It repeats the forward's operations exactly (the checkpoint checks that) but keeps the forward's records.
        """
        plan = self.current()
        if plan is None:
            return nullcontext(), nullcontext()
        return nullcontext(), self.activate(plan, record=self.recording(), discard_records=True)
