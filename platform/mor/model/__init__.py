"""The Mixture-of-Roles (MoRAgent) tuner: role-grouped LoRA layers with routers, losses, save/load.

```python
from mor.model import MoRConfig, apply_mor

mor_model = apply_mor(hf_causal_lm, MoRConfig())  # paper default: 3 roles, rank 16, 7 modules
out = mor_model(input_ids=ids, attention_mask=mask, labels=labels, role_ids=role_ids)
loss = out.loss + 0.01 * mor_model.aux_loss() + 0.001 * mor_model.orth_loss()
```

Imports only torch, transformers, peft, safetensors and pydantic.
"""

from importlib import import_module
from typing import TYPE_CHECKING, Any

from .config import DEFAULT_TARGET_MODULES, FUSED_MODULES, MoRConfig, MoRConfigError, RoleConfig

if TYPE_CHECKING:
    from .io import MoRLoadError, load_mor, load_role, read_mor_config, save_mor
    from .layer import MoRLinear
    from .losses import load_balancing_loss, orthogonality_loss
    from .model import MoRModel, apply_mor, resolve_target_modules, unwrap_mor_model
    from .params import ParameterCount, count_parameters
    from .router import Routing, route_top_k
    from .weights import RoleWeights

#: Where each name that needs torch lives: imported on first use, so reading a spec (which only needs the
#: configuration) does not load torch, transformers and peft.
_LAZY = {
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
    "DEFAULT_TARGET_MODULES",
    "FUSED_MODULES",
    "MoRConfig",
    "MoRConfigError",
    "MoRLinear",
    "MoRLoadError",
    "MoRModel",
    "ParameterCount",
    "RoleConfig",
    "RoleWeights",
    "Routing",
    "apply_mor",
    "count_parameters",
    "load_balancing_loss",
    "load_mor",
    "load_role",
    "orthogonality_loss",
    "read_mor_config",
    "resolve_target_modules",
    "route_top_k",
    "save_mor",
    "unwrap_mor_model",
]
