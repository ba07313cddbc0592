"""`apply_mor` and `MoRModel`: inject MoR layers into a Hugging Face causal LM and route role ids through it.

Role ids reach the layers through the model's `RoutingState` (see `mor.model.context`): `MoRModel.forward` builds
the per-call routing plan once (tokens grouped by role) and makes it current for this thread during the call;
`MoRModel.generate` installs a role schedule from which a forward pre-hook on the base model derives the plan of
every decoding step (prompt positions take the prompt's role ids, generated positions the row's role), which works
with the KV cache because the step's offset is read from the cache length (`mor.model.cache`).

Distributed training: every adapter parameter takes part in every training forward (roles absent from a batch
contribute an exact zero), so `DistributedDataParallel` works with the default `find_unused_parameters=False`.
Wrapped in DDP, call `ddp_model.module.aux_loss()` / `.orth_loss()` after the forward.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from peft.config import PeftConfig
from peft.tuners.tuners_utils import BaseTuner
from torch import nn

from .cache import CACHE_ARGUMENTS, cached_length, find_cache
from .config import FUSED_MODULES, LoRAConfig, MoRConfig, MoRConfigError
from .context import RoutingState, build_routing_plan
from .fusion import link_shared_inputs
from .layer import ADAPTER_NAME, Implementation, MoRLinear
from .losses import orthogonality_loss_batched
from .weights import RoleWeights

__all__ = ["MoRModel", "RoleSpec", "apply_mor", "resolve_target_modules", "unwrap_mor_model"]

#: A role given by name or id, for all rows or one per batch row.
RoleSpec = str | int | Sequence[str | int]


@dataclass
class _MoRPeftConfig(PeftConfig):
    """The subset of a PEFT config that PEFT's target matching and injection read."""

    target_modules: list[str] = field(default_factory=list)
    exclude_modules: list[str] | None = None
    target_parameters: list[str] | None = None
    modules_to_save: list[str] | None = None
    layers_to_transform: list[int] | None = None
    layers_pattern: list[str] | None = None


def _architecture(model: nn.Module) -> str:
    return type(model).__name__


def resolve_target_modules(model: nn.Module, config: MoRConfig | LoRAConfig) -> list[str]:
    """Map `config.target_modules` onto the model's linear layer names (fused `qkv_proj` / `gate_up_proj` included).

    Raises `MoRConfigError` naming each target that matches nothing, with the linear layer names the model has.
    """
    linear_names = sorted(
        {name.rsplit(".", 1)[-1] for name, module in model.named_modules() if isinstance(module, nn.Linear)}
    )
    available = set(linear_names)
    requested = list(config.target_modules)
    resolved: list[str] = []
    problems: list[str] = []
    for name in requested:
        if name in available:
            target = name
        else:
            fused = [fused for fused, parts in FUSED_MODULES.items() if name in parts and fused in available]
            if not fused:
                problems.append(
                    f"target_modules: {name!r} matches no linear layer of {_architecture(model)}; "
                    f"its linear layers are {linear_names}"
                )
                continue
            target = fused[0]
            missing = [part for part in FUSED_MODULES[target] if part not in requested]
            if missing:
                problems.append(
                    f"target_modules: {name!r} is fused into {target!r} in {_architecture(model)}, which also "
                    f"computes {missing}; list all of {list(FUSED_MODULES[target])} or name {target!r} directly"
                )
                continue
        if target not in resolved:
            resolved.append(target)
    if problems:
        raise MoRConfigError("; ".join(problems))
    return resolved


@dataclass
class _GenerationSchedule:
    """Role ids of the prompt `(rows, prompt_len)` and the role of each row's generated tokens `(rows,)`."""

    prompt_roles: torch.Tensor
    row_roles: torch.Tensor
    seen: int = 0  # the longest sequence a step of this generate call has covered so far

    def step_role_ids(self, batch: int, length: int, offset: int) -> torch.Tensor:
        """Role ids `(batch, length)` for the positions `offset .. offset+length-1` of every row.

        A step that starts at 0 but is shorter than what earlier steps covered can only mean the KV cache was not
        found (a step with a cache starts where the cache ends; one without passes the whole sequence): that would
        route the new tokens with the prompt's first roles, so it is refused instead of decoding wrongly.
        """
        rows, prompt_len = self.prompt_roles.shape
        if batch % rows:
            raise MoRConfigError(
                f"generate: the model ran on {batch} rows, not a multiple of the {rows} prompts; "
                f"pass one role per prompt row"
            )
        if offset == 0 and 0 < length <= self.seen:
            raise MoRConfigError(
                f"generate: a decoding step passed {length} token(s) at position 0 after {self.seen} were already "
                f"processed; the base model's KV cache was not found under any of {', '.join(CACHE_ARGUMENTS)} "
                f"(is this transformers version supported?)"
            )
        self.seen = max(self.seen, offset + length)
        positions = torch.arange(offset, offset + length)
        from_prompt = self.prompt_roles[:, positions.clamp(max=prompt_len - 1)]
        ids = torch.where(positions < prompt_len, from_prompt, self.row_roles.unsqueeze(1))
        if batch != rows:
            ids = ids.repeat_interleave(batch // rows, dim=0)
        return ids


class MoRModel(BaseTuner):
    """A Hugging Face causal LM with Mixture-of-Roles LoRA layers; the base weights are frozen.

    Call it like the base model plus `role_ids` (one role id per token, same shape as `input_ids`), or `role`
    (one role for every token, or one per row). It returns the base model's output.
    """

    prefix = "mor_"
    tuner_layer_cls = MoRLinear
    target_module_mapping: dict[str, list[str]] = {}

    def __init__(self, model: nn.Module, config: MoRConfig, *, adapter_dtype: torch.dtype = torch.float32) -> None:
        if any(isinstance(module, MoRLinear) for module in model.modules()):
            raise MoRConfigError(
                f"model: {_architecture(model)} already has MoR layers; apply_mor to the plain base model once"
            )
        targets = resolve_target_modules(model, config)
        self._mor_config = config
        self._routing = RoutingState()
        self._adapter_dtype = adapter_dtype
        super().__init__(model, _MoRPeftConfig(target_modules=targets), adapter_name=ADAPTER_NAME)
        link_shared_inputs(self.mor_layers())
        self._hooks = [
            model.register_forward_pre_hook(self._before_base_forward, with_kwargs=True),
            model.register_forward_hook(self._after_base_forward, with_kwargs=True, always_call=True),
        ]

    # --- PEFT BaseTuner protocol ------------------------------------------------------------------------------------

    def _create_and_replace(
        self,
        peft_config: PeftConfig,
        adapter_name: str,
        target: nn.Module,
        target_name: str,
        parent: nn.Module,
        current_key: str,
        parameter_name: str | None = None,
    ) -> None:
        layer = MoRLinear(
            target,  # type: ignore[arg-type]
            config=self._mor_config,
            routing=self._routing,
            name=current_key,
            adapter_dtype=self._adapter_dtype,
        )
        self._replace_module(parent, target_name, layer, target)

    # --- public surface -------------------------------------------------------------------------------------------

    @property
    def base_model(self) -> nn.Module:
        """The wrapped Hugging Face model (its targeted linears replaced by MoR layers)."""
        return self.model

    @property
    def config(self) -> MoRConfig:  # type: ignore[override]
        """The MoR configuration."""
        return self._mor_config

    @property
    def role_names(self) -> list[str]:
        """Role names in role-id order."""
        return self._mor_config.role_names

    @property
    def group_names(self) -> list[str]:
        """The LoRA groups each layer holds: the role names, or one group for all roles (`role_split: false`)."""
        return self._mor_config.group_names

    @property
    def _one_group(self) -> bool:
        return not self._mor_config.role_split

    def mor_layers(self) -> Iterator[tuple[str, MoRLinear]]:
        """`(module name relative to the base model, layer)` for every MoR layer."""
        for name, module in self.model.named_modules():
            if isinstance(module, MoRLinear):
                yield name, module

    def forward(  # type: ignore[override]
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        role_ids: torch.Tensor | None = None,
        role: RoleSpec | None = None,
        record_routing: bool | None = None,
        **kwargs: Any,
    ) -> Any:
        """Run the base model with every token routed to its role's LoRA group; returns the base model's output.

        `record_routing`: keep the router's load-balancing terms and expert counts for `aux_loss()` and
        `router_stats()`; by default only when gradients are enabled (training), so inference skips that work.
        """
        reference = input_ids if input_ids is not None else kwargs.get("inputs_embeds")
        if reference is None:
            raise MoRConfigError("input_ids: got None (and no inputs_embeds); pass input_ids and role_ids")
        token_shape = tuple(reference.shape[:2])
        ids = self._role_ids_for(role_ids, role, token_shape, "input_ids" if input_ids is not None else "inputs_embeds")
        plan = build_routing_plan(ids, len(self.role_names), device=reference.device, one_group=self._one_group)
        record = torch.is_grad_enabled() if record_routing is None else record_routing
        with self._routing.activate(plan, record=record):
            return self.model(input_ids=input_ids, attention_mask=attention_mask, labels=labels, **kwargs)

    @torch.no_grad()
    def generate(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        role_ids: torch.Tensor | None = None,
        role: RoleSpec = "executor",
        **kwargs: Any,
    ) -> Any:
        """`generate` of the base model with role routing.

        `role_ids` are the prompt tokens' roles (default: every prompt token has the row's `role`); every generated
        token gets its row's `role` (a name or id for all rows, or a list with one per row). Works with the KV cache.
        """
        reference = input_ids if input_ids is not None else kwargs.get("inputs_embeds")
        if reference is None:
            raise MoRConfigError("input_ids: got None (and no inputs_embeds); pass the prompt token ids")
        batch, length = tuple(reference.shape[:2])
        row_roles = self._row_roles(role, batch)
        if role_ids is None:
            prompt_roles = row_roles.unsqueeze(1).expand(batch, length)
        else:
            prompt_roles = self._role_ids_for(role_ids, None, (batch, length), "input_ids")
        schedule = _GenerationSchedule(prompt_roles=prompt_roles.cpu().long(), row_roles=row_roles)
        with self._routing.generating(schedule):
            return self.model.generate(input_ids=input_ids, attention_mask=attention_mask, **kwargs)

    def aux_loss(self, reduction: str = "sum") -> torch.Tensor:
        """Load-balancing loss of the last forward of this thread, summed over layers and the roles that had tokens
        (or their `"mean"`)."""
        if reduction not in ("sum", "mean"):
            raise MoRConfigError(f"reduction: got {reduction!r}, must be 'sum' or 'mean'")
        records = self._routing.records()
        if not records:
            return torch.zeros((), device=self._device())
        total = torch.stack([record.aux_loss for record in records]).sum()
        if reduction == "sum":
            return total
        active = torch.stack([record.active for record in records]).sum()
        return total / active.clamp(min=1)

    def orth_loss(self) -> torch.Tensor:
        """Orthogonality loss between the LoRAs of each role, summed over all MoR layers.

        Role groups of the same shape (across layers and modules) are stacked so each Gram is one batched matmul.
        """
        buckets: dict[tuple[int, ...], list[RoleWeights]] = {}
        for _, layer in self.mor_layers():
            for weights in layer.role_weights:
                if weights.num_loras > 1:
                    buckets.setdefault((*weights.down.shape, *weights.up.shape), []).append(weights)
        losses = [
            orthogonality_loss_batched(
                torch.stack([weights.lora_down for weights in group]),
                torch.stack([weights.up for weights in group]),
                group[0].rank,
            )
            for group in buckets.values()
        ]
        if not losses:
            return torch.zeros((), device=self._device())
        return torch.stack(losses).sum()

    def router_stats(self) -> dict[str, list[float]]:
        """Per role group, the fraction of its tokens' top-k assignments that went to each routed expert (last
        forward).

        Summed over all layers; each list sums to 1, or is all zeros when the group had no tokens.
        """
        records = self._routing.records()
        totals = torch.stack([record.expert_counts for record in records]).double().sum(0).cpu() if records else None
        stats: dict[str, list[float]] = {}
        for role_id, (name, role) in enumerate(self._mor_config.groups.items()):
            if not role.routed:
                continue
            counts = totals[role_id, : role.routed] if totals is not None else None
            if counts is None or float(counts.sum()) == 0.0:
                stats[name] = [0.0] * role.routed
            else:
                stats[name] = (counts / counts.sum()).tolist()
        return stats

    def set_trainable_roles(self, roles: Sequence[str] | None = None) -> None:
        """Train only the named roles' groups (all roles when `roles` is None); the others are frozen."""
        groups = self.groups_of(roles)
        for _, layer in self.mor_layers():
            layer.set_adapter(groups)

    def set_impl(self, impl: Implementation) -> None:
        """Choose the training math of every layer: `"auto"` (default: `"grouped"` on CPU, `"fused"` elsewhere),
        `"fused"` (all roles in one matmul pair, no host syncs, few operators: for GPUs), `"grouped"` (each role's
        tokens gathered: the least arithmetic, for CPUs) or `"dense"` (the reference math)."""
        if impl not in ("auto", "fused", "grouped", "dense"):
            raise MoRConfigError(f"impl: got {impl!r}, must be 'auto', 'fused', 'grouped' or 'dense'")
        for _, layer in self.mor_layers():
            layer.impl = impl

    def adapter_state_dict(self, roles: Sequence[str] | None = None) -> dict[str, torch.Tensor]:
        """Adapter tensors keyed `<module>.mor_roles.<group>.<down|up>` (module names relative to the base model) of
        the groups serving `roles` (all when None); a group is a role, or `SHARED_GROUP` without role split."""
        return self.group_state_dict(self.groups_of(roles))

    def group_state_dict(self, groups: Sequence[str]) -> dict[str, torch.Tensor]:
        """Adapter tensors of the named LoRA groups (see `group_names`), keyed as in `adapter_state_dict`."""
        unknown = [group for group in groups if group not in self.group_names]
        if unknown:
            raise MoRConfigError(f"groups: got {unknown}, the model's LoRA groups are {self.group_names}")
        state: dict[str, torch.Tensor] = {}
        for module_name, layer in self.mor_layers():
            for group in groups:
                weights = layer.mor_roles[group]
                state[f"{module_name}.mor_roles.{group}.down"] = weights.down.detach()
                state[f"{module_name}.mor_roles.{group}.up"] = weights.up.detach()
        return state

    def gradient_checkpointing_enable(self, **kwargs: Any) -> None:
        """Enable activation checkpointing on the base model with the role plan restored in the recomputation.

        Uses non-reentrant checkpointing with a `context_fn` that re-activates the forward's routing plan.
        """
        checkpoint_kwargs = {"use_reentrant": False, "context_fn": self._routing.checkpoint_contexts}
        enable = getattr(self.model, "activation_checkpointing_enable", None)
        if enable is not None:
            enable(activation_checkpointing_kwargs=checkpoint_kwargs, **kwargs)
        else:
            self.model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=checkpoint_kwargs, **kwargs)

    activation_checkpointing_enable = gradient_checkpointing_enable

    # --- helpers ----------------------------------------------------------------------------------------------------

    def groups_of(self, roles: Sequence[str] | None) -> list[str]:
        """The groups serving `roles` (every group when None), each once, in group order; checks the role names."""
        if roles is None:
            return self.group_names
        wanted = {self._mor_config.group_of(name) for name in roles}
        return [group for group in self.group_names if group in wanted]

    def _device(self) -> torch.device:
        for parameter in self.parameters():
            return parameter.device
        return torch.device("cpu")

    def _row_roles(self, role: RoleSpec | None, batch: int) -> torch.Tensor:
        if role is None:
            raise MoRConfigError(f"role: got None, must be one of {self.role_names}, an id, or a list per row")
        if isinstance(role, (str, int)):
            return torch.full((batch,), self._mor_config.role_id(role), dtype=torch.long)
        roles = list(role)
        if len(roles) != batch:
            raise MoRConfigError(f"role: got {len(roles)} roles for {batch} rows, must give one role per row")
        return torch.tensor([self._mor_config.role_id(item) for item in roles], dtype=torch.long)

    def _role_ids_for(
        self,
        role_ids: torch.Tensor | None,
        role: RoleSpec | None,
        token_shape: tuple[int, ...],
        reference_name: str,
    ) -> torch.Tensor:
        if role_ids is not None and role is not None:
            raise MoRConfigError("role: got both role_ids and role; pass one of them")
        if role_ids is None:
            if role is None:
                raise MoRConfigError(
                    f"role_ids: got None, must be a LongTensor of shape {list(token_shape)} like {reference_name} "
                    f"(or pass role=<name>); role id i means {self.role_names}[i]"
                )
            return self._row_roles(role, token_shape[0]).unsqueeze(1).expand(*token_shape)
        if not isinstance(role_ids, torch.Tensor):
            role_ids = torch.as_tensor(role_ids)
        if tuple(role_ids.shape) != token_shape:
            raise MoRConfigError(
                f"role_ids: got shape {list(role_ids.shape)}, must match {reference_name} {list(token_shape)}"
            )
        return role_ids

    def _before_base_forward(self, module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        schedule = self._routing.generation_schedule()
        if schedule is None:
            return None
        tokens = kwargs.get("input_ids")
        if tokens is None:
            tokens = kwargs.get("inputs_embeds")
        if tokens is None and args:
            tokens = args[0]
        if tokens is None:
            raise MoRConfigError("generate: the base model was called without input_ids or inputs_embeds")
        offset = cached_length(find_cache(kwargs))
        batch, length = int(tokens.shape[0]), int(tokens.shape[1])
        num_roles, one_group = len(self.role_names), self._one_group
        self._routing.enter_step(
            lambda: build_routing_plan(
                schedule.step_role_ids(batch, length, offset), num_roles, device=tokens.device, one_group=one_group
            )
        )
        return None

    def _after_base_forward(
        self, module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any], output: Any
    ) -> None:
        if self._routing.generation_schedule() is not None:
            self._routing.exit_step()
        return None


def unwrap_mor_model(model: nn.Module) -> MoRModel:
    """The `MoRModel` itself, also when wrapped by DistributedDataParallel / DataParallel (their `.module`)."""
    while not isinstance(model, MoRModel) and isinstance(getattr(model, "module", None), nn.Module):
        model = model.module
    if not isinstance(model, MoRModel):
        raise TypeError(f"model: got {type(model).__name__}, expected a MoRModel (from apply_mor or load_mor)")
    return model


def apply_mor(
    model: nn.Module,
    config: MoRConfig | Mapping[str, Any] | None = None,
    *,
    adapter_dtype: torch.dtype = torch.float32,
) -> MoRModel:
    """Wrap every targeted linear layer of a Hugging Face causal LM with MoR layers and freeze the base weights.

    `config` defaults to the paper's setting. Raises `MoRConfigError` when the configuration or a target name
    does not fit the model.
    """
    if config is None:
        config = MoRConfig()
    elif not isinstance(config, MoRConfig):
        config = MoRConfig.model_validate(dict(config))
    return MoRModel(model, config, adapter_dtype=adapter_dtype)
