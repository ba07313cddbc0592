"""Save and load MoR adapters: one safetensors file per role group plus `mor_config.json`, checked against the base
model.

Directory layout::

    mor_config.json            format, MoR config, saved groups ("roles"), group -> file, base-model fingerprint
    role-<name>.safetensors    that group's tensors, keyed `<module>.mor_roles.<name>.<down|up>`

A group is a role, or the one group `all` of a configuration without role split (`role_split: false`). A directory
may hold every group (`save_mor(model, dir)`) or those of some roles (`roles=[...]`), so one role can be retrained,
saved on its own and swapped into a model with `load_role` without touching the other roles' weights.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from .config import MoRConfig, MoRConfigError
from .model import MoRModel, apply_mor, resolve_target_modules, unwrap_mor_model

__all__ = ["CONFIG_FILE", "MoRLoadError", "load_groups", "load_mor", "load_role", "read_mor_config", "save_mor"]

CONFIG_FILE = "mor_config.json"
_FORMAT = "mor-adapter"
_FORMAT_VERSION = 1


class MoRLoadError(MoRConfigError):
    """A saved adapter does not fit the model it is loaded into; the message says what differs."""


def _role_file(role: str) -> str:
    return f"role-{role}.safetensors"


def _fingerprint(base_model: nn.Module, module_shapes: dict[str, list[int]]) -> dict[str, Any]:
    model_config = getattr(base_model, "config", None)
    return {
        "class": type(base_model).__name__,
        "model_type": getattr(model_config, "model_type", None),
        "name_or_path": getattr(model_config, "_name_or_path", None) or None,
        "modules": module_shapes,
    }


def _model_module_shapes(mor_model: MoRModel) -> dict[str, list[int]]:
    return {name: [layer.out_features, layer.in_features] for name, layer in mor_model.mor_layers()}


def _base_module_shapes(base_model: nn.Module, config: MoRConfig) -> dict[str, list[int]]:
    targets = set(resolve_target_modules(base_model, config))
    return {
        name: [module.out_features, module.in_features]
        for name, module in base_model.named_modules()
        if isinstance(module, nn.Linear) and name.rsplit(".", 1)[-1] in targets
    }


def save_mor(mor_model: MoRModel, directory: str | Path, roles: Sequence[str] | None = None) -> Path:
    """Write the adapter (every group, or the groups serving `roles`) to `directory`; returns the directory.

    Accepts the model wrapped in DistributedDataParallel too.
    """
    mor_model = unwrap_mor_model(mor_model)
    if roles is not None and not list(roles):
        raise MoRConfigError(f"roles: got [], must name at least one of {mor_model.role_names} (or None for all)")
    names = mor_model.groups_of(roles)
    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    for name in names:
        tensors = {key: value.contiguous().cpu() for key, value in mor_model.group_state_dict([name]).items()}
        save_file(tensors, str(path / _role_file(name)), metadata={"format": "pt", "mor_role": name})
    manifest = {
        "format": _FORMAT,
        "format_version": _FORMAT_VERSION,
        "config": mor_model.config.model_dump(mode="json"),
        "roles": names,
        "files": {name: _role_file(name) for name in names},
        "base_model": _fingerprint(mor_model.base_model, _model_module_shapes(mor_model)),
    }
    (path / CONFIG_FILE).write_text(json.dumps(manifest, indent=2) + "\n")
    return path


def _read_manifest(directory: str | Path) -> dict[str, Any]:
    path = Path(directory) / CONFIG_FILE
    if not path.is_file():
        raise MoRLoadError(f"{path}: not found; pass a directory written by save_mor")
    try:
        manifest = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise MoRLoadError(f"{path}: not valid JSON ({error}); pass a directory written by save_mor") from None
    if manifest.get("format") != _FORMAT or manifest.get("format_version") != _FORMAT_VERSION:
        raise MoRLoadError(
            f"{path}: format {manifest.get('format')!r} version {manifest.get('format_version')!r}, "
            f"expected {_FORMAT!r} version {_FORMAT_VERSION}"
        )
    return manifest


def read_mor_config(directory: str | Path) -> MoRConfig:
    """The `MoRConfig` saved in an adapter directory."""
    return MoRConfig.model_validate(_read_manifest(directory)["config"])


def _check_modules(saved: dict[str, list[int]], actual: dict[str, list[int]], where: str) -> None:
    missing = sorted(set(saved) - set(actual))
    unexpected = sorted(set(actual) - set(saved))
    mismatched = [
        f"{name}: adapter (out, in) {tuple(saved[name])} vs model {tuple(actual[name])}"
        for name in sorted(set(saved) & set(actual))
        if list(saved[name]) != list(actual[name])
    ]
    problems = []
    if missing:
        problems.append(f"modules in the adapter but not in the model: {_preview(missing)}")
    if unexpected:
        problems.append(f"modules in the model but not in the adapter: {_preview(unexpected)}")
    if mismatched:
        problems.append(f"shape mismatches: {_preview(mismatched)}")
    if problems:
        raise MoRLoadError(f"{where}: the base model does not match the adapter: " + "; ".join(problems))


def _preview(items: list[str], limit: int = 6) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f" (+{len(items) - limit} more)" if len(items) > limit else "")


def load_mor(base_model: nn.Module, directory: str | Path, *, adapter_dtype: torch.dtype = torch.float32) -> MoRModel:
    """Apply the saved MoR adapter in `directory` (which must hold every role) to `base_model`."""
    manifest = _read_manifest(directory)
    config = MoRConfig.model_validate(manifest["config"])
    missing_groups = [name for name in config.group_names if name not in manifest["roles"]]
    if missing_groups:
        raise MoRLoadError(
            f"{directory}: holds roles {manifest['roles']} but the config has {config.group_names}; "
            f"missing {missing_groups}: apply_mor(base, read_mor_config(dir)) and load_role each role's directory"
        )
    _check_modules(manifest["base_model"]["modules"], _base_module_shapes(base_model, config), str(directory))
    mor_model = apply_mor(base_model, config, adapter_dtype=adapter_dtype)
    for name in config.group_names:
        _load_role_tensors(mor_model, Path(directory), manifest, name)
    return mor_model


def load_role(mor_model: MoRModel, directory: str | Path, role: str) -> None:
    """Replace the weights of the group serving `role` in `mor_model` with those saved in `directory`; other groups
    are untouched."""
    mor_model = unwrap_mor_model(mor_model)
    manifest = _read_manifest(directory)
    group = mor_model.config.group_of(role)
    if group not in manifest["roles"]:
        raise MoRLoadError(f"{directory}: holds roles {manifest['roles']}, not {group!r}")
    _load_checked_group(mor_model, Path(directory), manifest, group)


def load_groups(mor_model: MoRModel, directory: str | Path) -> list[str]:
    """Load every group saved in `directory` (one role's, several, or the one group without role split) into
    `mor_model`; returns the groups loaded. The other groups are untouched."""
    mor_model = unwrap_mor_model(mor_model)
    manifest = _read_manifest(directory)
    groups = list(manifest["roles"])
    unknown = [group for group in groups if group not in mor_model.group_names]
    if unknown:
        raise MoRLoadError(
            f"{directory}: holds groups {groups}, the model has {mor_model.group_names}; build the model with "
            "the saved config (read_mor_config)"
        )
    for group in groups:
        _load_checked_group(mor_model, Path(directory), manifest, group)
    return groups


def _load_checked_group(mor_model: MoRModel, directory: Path, manifest: dict[str, Any], group: str) -> None:
    saved = MoRConfig.model_validate(manifest["config"])
    model_config = mor_model.config
    if (
        saved.role_split != model_config.role_split
        or group not in saved.groups
        or saved.groups[group] != model_config.groups[group]
        or saved.rank != model_config.rank
    ):
        split = (
            f" (role_split {saved.role_split}, the model's {model_config.role_split})"
            if saved.role_split != model_config.role_split
            else ""
        )
        raise MoRLoadError(
            f"{directory}: role {group!r} was saved with rank {saved.rank} and {saved.groups.get(group)}, the model "
            f"has rank {model_config.rank} and {model_config.groups[group]}{split}; build the model with the saved "
            "config"
        )
    if saved.alpha != model_config.alpha:
        raise MoRLoadError(
            f"{directory}: saved with alpha {saved.alpha}, the model has alpha {model_config.alpha}; "
            f"the scaling alpha / rank must match"
        )
    _check_modules(manifest["base_model"]["modules"], _model_module_shapes(mor_model), str(directory))
    _load_role_tensors(mor_model, directory, manifest, group)


def _load_role_tensors(mor_model: MoRModel, directory: Path, manifest: dict[str, Any], role: str) -> None:
    path = directory / manifest["files"][role]
    if not path.is_file():
        raise MoRLoadError(f"{path}: not found; the adapter directory is incomplete")
    tensors = load_file(str(path))
    expected = mor_model.group_state_dict([role])
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    if missing or unexpected:
        raise MoRLoadError(
            f"{path}: tensors do not match the model: missing {_preview(missing)}; unexpected {_preview(unexpected)}"
        )
    for key, target in expected.items():
        source = tensors[key]
        if source.shape != target.shape:
            raise MoRLoadError(f"{path}: {key} has shape {tuple(source.shape)}, the model {tuple(target.shape)}")
    with torch.no_grad():
        for key, target in expected.items():
            target.copy_(tensors[key].to(device=target.device, dtype=target.dtype))
