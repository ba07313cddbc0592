"""The plain-LoRA baseline: PEFT's own LoRA on the same target modules, serving the tokens of every role.

`LoRAModel` answers the calls the trainer, the agent loop, the evaluation and the server make of a `MoRModel`
(`role_names`, `forward`/`generate` with role ids, `aux_loss`, `orth_loss`, `router_stats`, adapters on/off), so
the same code trains, evaluates and serves either. Role ids are accepted and ignored: one LoRA serves every role.

Saved in PEFT's format, so `PeftModel.from_pretrained(base, directory)` and vLLM's `--lora-modules` load it without
mor::

    adapter_config.json        PEFT's LoraConfig (r, lora_alpha, lora_dropout, target_modules)
    adapter_model.safetensors  the LoRA weights, PEFT's key names
    mor_lora.json              mor's side: format, the LoRAConfig (with the agent's role names)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from peft import LoraConfig, PeftModel, get_peft_model, get_peft_model_state_dict
from safetensors.torch import load_file
from torch import nn

from .config import LoRAConfig, MoRConfigError
from .model import RoleSpec, resolve_target_modules

__all__ = ["LORA_CONFIG_FILE", "LoRAModel", "apply_lora", "is_lora_dir", "load_lora", "read_lora_config", "save_lora"]

#: mor's file beside PEFT's in a saved LoRA adapter directory.
LORA_CONFIG_FILE = "mor_lora.json"
_PEFT_CONFIG_FILE = "adapter_config.json"
_PEFT_WEIGHTS_FILE = "adapter_model.safetensors"
_FORMAT = "mor-lora"
_FORMAT_VERSION = 1


class LoRAModel(nn.Module):
    """A Hugging Face causal LM with one PEFT LoRA on its target modules; the base weights are frozen.

    Called like a `MoRModel`: `role_ids` / `role` are checked and ignored (every role uses the same LoRA).
    """

    def __init__(self, peft_model: PeftModel, config: LoRAConfig) -> None:
        super().__init__()
        self.model = peft_model
        self._lora_config = config

    # --- the surface shared with MoRModel -----------------------------------------------------------------------

    @property
    def config(self) -> LoRAConfig:
        """The LoRA configuration."""
        return self._lora_config

    @property
    def peft_model(self) -> PeftModel:
        """The PEFT model (what `PeftModel.from_pretrained` would give)."""
        return self.model

    @property
    def base_model(self) -> nn.Module:
        """The wrapped Hugging Face model (its targeted linears carry PEFT's LoRA layers)."""
        return self.model.get_base_model()

    @property
    def role_names(self) -> list[str]:
        """The agent's role names in role-id order (all served by the one LoRA)."""
        return self._lora_config.role_names

    @property
    def group_names(self) -> list[str]:
        """No role groups: one LoRA serves every role."""
        return []

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
        """The base model's forward with the LoRA applied; `role_ids`, `role` and `record_routing` are ignored."""
        self._check_roles(role)
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
        """`generate` of the base model with the LoRA applied (the role only has to be one of `role_names`)."""
        self._check_roles(role)
        return self.model.generate(input_ids=input_ids, attention_mask=attention_mask, **kwargs)

    def aux_loss(self, reduction: str = "sum") -> torch.Tensor:
        """0: a plain LoRA has no router to balance."""
        if reduction not in ("sum", "mean"):
            raise MoRConfigError(f"reduction: got {reduction!r}, must be 'sum' or 'mean'")
        return torch.zeros((), device=self._device())

    def orth_loss(self) -> torch.Tensor:
        """0: a plain LoRA has one LoRA per layer, nothing to keep orthogonal."""
        return torch.zeros((), device=self._device())

    def router_stats(self) -> dict[str, list[float]]:
        """No routers: empty."""
        return {}

    def disable_adapter_layers(self) -> None:
        """Every LoRA layer returns its base layer's output until `enable_adapter_layers`."""
        self.model.base_model.disable_adapter_layers()

    def enable_adapter_layers(self) -> None:
        """Undo `disable_adapter_layers`."""
        self.model.base_model.enable_adapter_layers()

    def adapter_state_dict(self) -> dict[str, torch.Tensor]:
        """The LoRA tensors under PEFT's saved key names."""
        return {key: value.detach() for key, value in get_peft_model_state_dict(self.model).items()}

    def gradient_checkpointing_enable(self, **kwargs: Any) -> None:
        """Activation checkpointing on the base model (non-reentrant, so the frozen embeddings need no grad)."""
        checkpoint_kwargs = {"use_reentrant": False}
        base = self.base_model
        enable = getattr(base, "activation_checkpointing_enable", None)
        if enable is not None:
            enable(activation_checkpointing_kwargs=checkpoint_kwargs, **kwargs)
        else:
            base.gradient_checkpointing_enable(gradient_checkpointing_kwargs=checkpoint_kwargs, **kwargs)

    activation_checkpointing_enable = gradient_checkpointing_enable

    # --- helpers ----------------------------------------------------------------------------------------------------

    def _check_roles(self, role: RoleSpec | None) -> None:
        if role is None:
            return
        for item in [role] if isinstance(role, (str, int)) else list(role):
            self._lora_config.role_id(item)

    def _device(self) -> torch.device:
        for parameter in self.parameters():
            return parameter.device
        return torch.device("cpu")


def _peft_config(base_model: nn.Module, config: LoRAConfig) -> LoraConfig:
    return LoraConfig(
        r=config.rank,
        lora_alpha=config.alpha,
        lora_dropout=config.dropout,
        target_modules=resolve_target_modules(base_model, config),
        bias="none",
        task_type="CAUSAL_LM",
    )


def apply_lora(base_model: nn.Module, config: LoRAConfig | None = None) -> LoRAModel:
    """Add one PEFT LoRA to every target module of `base_model` (float32 adapter weights), freezing the base.

    Targets resolve as MoR's do (logical names onto fused projections); raises `MoRConfigError` when one matches
    nothing.
    """
    config = config or LoRAConfig()
    if isinstance(base_model, (PeftModel, LoRAModel)):
        raise MoRConfigError("model: already has LoRA adapters; apply_lora to the plain base model once")
    peft_model = get_peft_model(base_model, _peft_config(base_model, config), autocast_adapter_dtype=True)
    _adapters_in_float32(peft_model)
    return LoRAModel(peft_model, config)


def _adapters_in_float32(peft_model: PeftModel) -> None:
    """Keep float32 master weights for the LoRA whatever the base dtype (as MoR's adapters)."""
    for name, parameter in peft_model.named_parameters():
        if "lora_" in name and parameter.dtype != torch.float32:
            parameter.data = parameter.data.float()


def save_lora(model: LoRAModel, directory: str | Path) -> Path:
    """Write the LoRA in PEFT's format plus `mor_lora.json` to `directory`; returns the directory.

    Accepts the model wrapped in DistributedDataParallel too.
    """
    model = _unwrap(model)
    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    model.peft_model.save_pretrained(str(path), safe_serialization=True)
    sidecar = {"format": _FORMAT, "format_version": _FORMAT_VERSION, "config": model.config.model_dump(mode="json")}
    (path / LORA_CONFIG_FILE).write_text(json.dumps(sidecar, indent=2) + "\n")
    return path


def is_lora_dir(directory: str | Path) -> bool:
    """Whether `directory` holds a saved LoRA adapter (`save_lora`'s files)."""
    path = Path(directory)
    return all((path / name).is_file() for name in (LORA_CONFIG_FILE, _PEFT_CONFIG_FILE, _PEFT_WEIGHTS_FILE))


def read_lora_config(directory: str | Path) -> LoRAConfig:
    """The `LoRAConfig` saved with a LoRA adapter."""
    from .io import MoRLoadError

    path = Path(directory) / LORA_CONFIG_FILE
    if not path.is_file():
        raise MoRLoadError(f"{path}: not found; pass a directory written by save_lora")
    try:
        sidecar = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise MoRLoadError(f"{path}: not valid JSON ({error}); pass a directory written by save_lora") from None
    if sidecar.get("format") != _FORMAT or sidecar.get("format_version") != _FORMAT_VERSION:
        raise MoRLoadError(
            f"{path}: format {sidecar.get('format')!r} version {sidecar.get('format_version')!r}, "
            f"expected {_FORMAT!r} version {_FORMAT_VERSION}"
        )
    return LoRAConfig.model_validate(sidecar["config"])


def load_lora(base_model: nn.Module, directory: str | Path, *, trainable: bool = False) -> LoRAModel:
    """The LoRA saved in `directory` applied to `base_model` (through `PeftModel.from_pretrained`).

    `trainable`: keep the LoRA weights trainable (to resume training); else they are frozen for inference.
    Raises `MoRLoadError` when the adapter does not fit the base model.
    """
    from .io import MoRLoadError

    config = read_lora_config(directory)
    where = f"{directory}: the base model does not match the LoRA adapter"
    try:
        resolve_target_modules(base_model, config)
        peft_model = PeftModel.from_pretrained(base_model, str(directory), is_trainable=trainable)
    except (MoRConfigError, RuntimeError, ValueError) as error:
        raise MoRLoadError(f"{where}: {error}") from None
    # PEFT only warns about adapter tensors that found no module (or modules that got no tensor): refuse both.
    saved = load_file(str(Path(directory) / _PEFT_WEIGHTS_FILE))
    loaded = {key: tuple(value.shape) for key, value in get_peft_model_state_dict(peft_model).items()}
    missing = sorted(set(loaded) - set(saved))
    unexpected = sorted(set(saved) - set(loaded))
    if missing or unexpected:
        raise MoRLoadError(
            f"{where}: tensors without a module in the model: {_preview(unexpected)}; modules of the model without "
            f"a tensor: {_preview(missing)}"
        )
    _adapters_in_float32(peft_model)
    return LoRAModel(peft_model, config)


def _preview(items: list[str], limit: int = 4) -> str:
    shown = ", ".join(items[:limit]) or "none"
    return shown + (f" (+{len(items) - limit} more)" if len(items) > limit else "")


def _unwrap(model: nn.Module) -> LoRAModel:
    while not isinstance(model, LoRAModel) and isinstance(getattr(model, "module", None), nn.Module):
        model = model.module
    if not isinstance(model, LoRAModel):
        raise TypeError(f"model: got {type(model).__name__}, expected a LoRAModel (from apply_lora or load_lora)")
    return model
