"""The Mixture-of-Roles (MoRAgent) tuner: role-grouped LoRA layers with routers, losses, save/load.

```python
from mor.model import MoRConfig, apply_mor

mor_model = apply_mor(hf_causal_lm, MoRConfig())  # paper default: 3 roles, rank 16, 7 modules
out = mor_model(input_ids=ids, attention_mask=mask, labels=labels, role_ids=role_ids)
loss = out.loss + 0.01 * mor_model.aux_loss() + 0.001 * mor_model.orth_loss()
```

The baseline, a plain PEFT LoRA on the same modules, answers the same calls (role ids ignored) and saves in PEFT's
format: `apply_lora(hf_causal_lm, LoRAConfig(rank=64))`, `save_lora`, `load_lora`; `mor.model.adapters` handles
either by what its directory holds.

Imports only torch, transformers, peft, safetensors and pydantic.
"""

from importlib import import_module
from typing import TYPE_CHECKING, Any

from .config import (
    DEFAULT_ROLE_NAMES,
    DEFAULT_TARGET_MODULES,
    FUSED_MODULES,
    SHARED_GROUP,
    LoRAConfig,
    MoRConfig,
    MoRConfigError,
    RoleConfig,
)

if TYPE_CHECKING:
    from .adapters import (
        LORA_ADAPTER,
        AdapterModel,
        adapter_kind,
        adapter_role_names,
        load_adapter,
        load_agent_adapters,
        save_adapter,
        split_for_registry,
        unwrap_adapter_model,
    )
    from .io import MoRLoadError, load_groups, load_mor, load_role, read_mor_config, save_mor
    from .layer import MoRLinear
    from .lora import LoRAModel, apply_lora, is_lora_dir, load_lora, read_lora_config, save_lora
    from .losses import load_balancing_loss, orthogonality_loss
    from .model import MoRModel, apply_mor, resolve_target_modules, unwrap_mor_model
    from .params import ParameterCount, count_parameters, lora_rank_for_budget
    from .router import Routing, route_top_k
    from .weights import RoleWeights

#: Where each name that needs torch lives: imported on first use, so reading a spec (which only needs the
#: configuration) does not load torch, transformers and peft.
_LAZY = {
    "LORA_ADAPTER": "adapters",
    "AdapterModel": "adapters",
    "adapter_kind": "adapters",
    "adapter_role_names": "adapters",
    "load_adapter": "adapters",
    "load_agent_adapters": "adapters",
    "save_adapter": "adapters",
    "split_for_registry": "adapters",
    "unwrap_adapter_model": "adapters",
    "LoRAModel": "lora",
    "apply_lora": "lora",
    "is_lora_dir": "lora",
    "load_lora": "lora",
    "read_lora_config": "lora",
    "save_lora": "lora",
    "load_groups": "io",
    "lora_rank_for_budget": "params",
    "MoRLoadError": "io",
    "load_mor": "io",
    "load_role": "io",
    "read_mor_config": "io",
    "save_mor": "io",
    "MoRLinear": "layer",
    "load_balancing_loss": "losses",
    "orthogonality_loss": "losses",
    "MoRModel": "model",
    "apply_mor": "model",
    "resolve_target_modules": "model",
    "unwrap_mor_model": "model",
    "ParameterCount": "params",
    "count_parameters": "params",
    "Routing": "router",
    "route_top_k": "router",
    "RoleWeights": "weights",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


__all__ = [
    "DEFAULT_ROLE_NAMES",
    "DEFAULT_TARGET_MODULES",
    "FUSED_MODULES",
    "LORA_ADAPTER",
    "SHARED_GROUP",
    "AdapterModel",
    "LoRAConfig",
    "LoRAModel",
    "MoRConfig",
    "MoRConfigError",
    "MoRLinear",
    "MoRLoadError",
    "MoRModel",
    "ParameterCount",
    "RoleConfig",
    "RoleWeights",
    "Routing",
    "adapter_kind",
    "adapter_role_names",
    "apply_lora",
    "apply_mor",
    "count_parameters",
    "is_lora_dir",
    "load_adapter",
    "load_agent_adapters",
    "load_balancing_loss",
    "load_groups",
    "load_lora",
    "load_mor",
    "load_role",
    "lora_rank_for_budget",
    "orthogonality_loss",
    "read_lora_config",
    "read_mor_config",
    "resolve_target_modules",
    "route_top_k",
    "save_adapter",
    "save_lora",
    "save_mor",
    "split_for_registry",
    "unwrap_adapter_model",
    "unwrap_mor_model",
]
