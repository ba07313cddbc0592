"""Parameter counts of a MoR or LoRA model, or of a configuration applied to a base model without building it."""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from .adapters import unwrap_adapter_model
from .config import LoRAConfig, MoRConfig
from .lora import LoRAModel
from .model import MoRModel, resolve_target_modules

__all__ = ["ParameterCount", "count_parameters", "lora_rank_for_budget"]


@dataclass(frozen=True)
class ParameterCount:
    """Trainable (adapter) and frozen (base) parameter counts, and the adapter parameters of each role group (a
    role, `all` without role split; empty for a plain LoRA, whose one adapter serves every role)."""

    trainable: int
    frozen: int
    per_role: dict[str, int]

    @property
    def total(self) -> int:
        """All parameters."""
        return self.trainable + self.frozen

    @property
    def added_fraction(self) -> float:
        """Adapter parameters relative to the base model."""
        return self.trainable / self.frozen if self.frozen else float("inf")


def _unique_numel(module: nn.Module, *, trainable: bool | None = None) -> int:
    return sum(
        parameter.numel()
        for parameter in module.parameters()  # parameters() yields tied weights once
        if trainable is None or parameter.requires_grad == trainable
    )


def count_parameters(
    model: MoRModel | LoRAModel | MoRConfig | LoRAConfig | tuple[MoRConfig | LoRAConfig, nn.Module],
    base_model: nn.Module | None = None,
) -> ParameterCount:
    """Count a built `MoRModel`'s or `LoRAModel`'s parameters, or those `config` would add to `base_model` (also
    `(config, base)`).

    For a built MoR model, `trainable`/`frozen` follow `requires_grad` (a LoRA model's `trainable` are its LoRA
    weights); `per_role` counts each role group's adapter weights. The config form is analytic: it builds nothing,
    so it works on meta-device models of any size.
    """
    if isinstance(model, tuple):
        model, base_model = model
    if isinstance(model, nn.Module) and base_model is None:
        model = unwrap_adapter_model(model)
    if isinstance(model, LoRAModel):  # its LoRA weights, also when loaded frozen for inference
        adapter = sum(parameter.numel() for name, parameter in model.named_parameters() if ".lora_" in name)
        return ParameterCount(trainable=adapter, frozen=_unique_numel(model) - adapter, per_role={})
    if isinstance(model, LoRAConfig) and base_model is not None:
        per_rank = _per_rank_cost(model, base_model)
        return ParameterCount(trainable=model.rank * per_rank, frozen=_unique_numel(base_model), per_role={})
    if isinstance(model, MoRModel):
        per_role = {name: 0 for name in model.group_names}
        for _, layer in model.mor_layers():
            for name, weights in layer.mor_roles.items():
                per_role[name] += sum(parameter.numel() for parameter in weights.parameters())
        return ParameterCount(
            trainable=_unique_numel(model, trainable=True),
            frozen=_unique_numel(model, trainable=False),
            per_role=per_role,
        )
    if not isinstance(model, MoRConfig) or base_model is None:
        raise TypeError(
            "count_parameters: pass a MoRModel or LoRAModel, or a MoRConfig or LoRAConfig and the base model it "
            "would wrap"
        )
    config = model
    targets = set(resolve_target_modules(base_model, config))
    per_role = {name: 0 for name in config.group_names}
    for module_name, module in base_model.named_modules():
        if not isinstance(module, nn.Linear) or module_name.rsplit(".", 1)[-1] not in targets:
            continue
        for name, role in config.groups.items():
            lora_rows = role.num_loras * config.rank
            down_rows = lora_rows + role.routed + int(role.shared)
            per_role[name] += down_rows * module.in_features + module.out_features * lora_rows
    return ParameterCount(trainable=sum(per_role.values()), frozen=_unique_numel(base_model), per_role=per_role)


def _per_rank_cost(config: MoRConfig | LoRAConfig, base_model: nn.Module) -> int:
    """Parameters one rank of a LoRA on every target module adds: the sum of in + out over the targeted linears."""
    targets = set(resolve_target_modules(base_model, config))
    return sum(
        module.in_features + module.out_features
        for name, module in base_model.named_modules()
        if isinstance(module, nn.Linear) and name.rsplit(".", 1)[-1] in targets
    )


def lora_rank_for_budget(trainable: int, base_model: nn.Module, config: LoRAConfig | None = None) -> int:
    """The LoRA rank whose trainable parameters on `config`'s target modules come nearest `trainable` (e.g. a MoR
    adapter's count, for a baseline at the same budget); at least 1."""
    per_rank = _per_rank_cost(config or LoRAConfig(), base_model)
    return max(1, round(trainable / per_rank))
