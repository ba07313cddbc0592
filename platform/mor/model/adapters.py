"""Either adapter, by what its directory holds: MoR (`mor_config.json`) or a plain PEFT LoRA (`mor_lora.json` +
PEFT's files). The trainer, the registry export and the agent loader go through here, so they handle both alike.

An agent's adapter directories (as registered): one per role for a MoR adapter with role split, else one for the
whole adapter, named `SHARED_GROUP` ("all", MoR without role split) or `LORA_ADAPTER` ("lora").
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from .config import SHARED_GROUP
from .io import CONFIG_FILE, MoRLoadError, load_groups, load_mor, read_mor_config, save_mor
from .lora import LoRAModel, is_lora_dir, load_lora, read_lora_config, save_lora
from .model import MoRModel, apply_mor

__all__ = [
    "LORA_ADAPTER",
    "AdapterModel",
    "adapter_kind",
    "adapter_role_names",
    "load_adapter",
    "load_agent_adapters",
    "save_adapter",
    "split_for_registry",
    "unwrap_adapter_model",
]

#: Either adapter model; both answer the calls of training, the agent loop and serving.
AdapterModel = MoRModel | LoRAModel

#: The directory name of a plain LoRA among an agent's adapters.
LORA_ADAPTER = "lora"


def unwrap_adapter_model(model: nn.Module) -> AdapterModel:
    """The `MoRModel` or `LoRAModel` itself, also when wrapped by DistributedDataParallel / DataParallel."""
    while not isinstance(model, (MoRModel, LoRAModel)) and isinstance(getattr(model, "module", None), nn.Module):
        model = model.module
    if not isinstance(model, (MoRModel, LoRAModel)):
        raise TypeError(f"model: got {type(model).__name__}, expected a MoRModel or LoRAModel")
    return model


def adapter_kind(directory: str | Path) -> str:
    """`"lora"` or `"mor"`: which adapter `directory` holds; raises `MoRLoadError` for neither."""
    if is_lora_dir(directory):
        return "lora"
    if (Path(directory) / CONFIG_FILE).is_file():
        return "mor"
    raise MoRLoadError(
        f"{directory}: holds no adapter (neither {CONFIG_FILE} nor a PEFT LoRA); pass a directory written by "
        "save_mor or save_lora"
    )


def adapter_role_names(directory: str | Path) -> list[str]:
    """The agent's role names, in role-id order, saved with the adapter in `directory`."""
    if adapter_kind(directory) == "lora":
        return read_lora_config(directory).role_names
    return read_mor_config(directory).role_names


def save_adapter(model: nn.Module, directory: str | Path) -> Path:
    """Write the whole adapter (`save_mor` or `save_lora`) to `directory`; accepts a DDP-wrapped model."""
    model = unwrap_adapter_model(model)
    if isinstance(model, LoRAModel):
        return save_lora(model, directory)
    return save_mor(model, directory)


def load_adapter(
    base_model: nn.Module, directory: str | Path, *, adapter_dtype: torch.dtype = torch.float32
) -> AdapterModel:
    """The adapter saved whole in `directory` (by `save_adapter`) applied to `base_model`, trainable."""
    if adapter_kind(directory) == "lora":
        return load_lora(base_model, directory, trainable=True)
    return load_mor(base_model, directory, adapter_dtype=adapter_dtype)


def load_agent_adapters(base_model: nn.Module, directories: Mapping[str, Path]) -> AdapterModel:
    """An agent's adapter directories (as registered: see the module docstring) applied to `base_model`.

    A MoR adapter's directories must cover every group of its configuration; a LoRA is one directory.
    """
    if not directories:
        raise MoRLoadError("adapters: got none; an agent holds one adapter directory per role, or one for all roles")
    kinds = {name: adapter_kind(directory) for name, directory in directories.items()}
    if "lora" in kinds.values():
        if len(directories) != 1:
            raise MoRLoadError(f"adapters: a LoRA serves every role alone, got {len(directories)}: {list(kinds)}")
        return load_lora(base_model, next(iter(directories.values())))
    config = read_mor_config(next(iter(directories.values())))
    model = apply_mor(base_model, config)
    loaded: set[str] = set()
    for directory in directories.values():
        loaded.update(load_groups(model, directory))
    missing = [group for group in config.group_names if group not in loaded]
    if missing:
        raise MoRLoadError(
            f"adapters: roles {missing} of the adapter config have no directory; got {list(directories)}"
        )
    return model


def split_for_registry(adapter_dir: Path, base_dir: Path, target: Path) -> dict[str, Path]:
    """An agent's adapter directories from a whole saved adapter: one per role for MoR with role split (each role
    versioned and swappable on its own), written under `target`; else the adapter directory itself, named `all`
    or `lora`. `base_dir` holds the base model (`save_pretrained`), loaded only to split roles."""
    if adapter_kind(adapter_dir) == "lora":
        return {LORA_ADAPTER: Path(adapter_dir)}
    config = read_mor_config(adapter_dir)
    if not config.role_split:
        return {SHARED_GROUP: Path(adapter_dir)}
    from transformers import AutoModelForCausalLM

    model = load_mor(AutoModelForCausalLM.from_pretrained(base_dir), adapter_dir)
    return {role: save_mor(model, Path(target) / role, roles=[role]) for role in config.role_names}
