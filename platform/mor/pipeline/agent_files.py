"""Loading a trained agent (base model + per-role adapters + tokenizer) from local files."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from mor.base import load_base
from mor.model import MoRModel, apply_mor, load_role, read_mor_config

__all__ = ["load_agent_model"]


def load_agent_model(
    *,
    base_kind: str,
    base_name: str,
    base_weights_dir: Path | None,
    adapters: Mapping[str, Path],
    tokenizer_dir: Path,
    revision: str | None = None,
) -> tuple[MoRModel, Any]:
    """The MoR model (eval mode) and tokenizer of an agent: base weights from the agent's own copy when it has
    one (always for builtin bases), else from the path / hub id; then every role's adapter group."""
    if not adapters:
        raise ValueError("adapters: got none; an agent holds one adapter directory per role")
    if base_weights_dir is not None:
        base = AutoModelForCausalLM.from_pretrained(base_weights_dir, dtype=torch.float32)
    elif base_kind in ("path", "hub"):
        base, _ = load_base({base_kind: base_name, **({"revision": revision} if revision else {})})
    else:
        raise ValueError(f"base: a {base_kind} base needs its weights in the agent (base/ is missing)")
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    config = read_mor_config(next(iter(adapters.values())))
    missing = [role for role in config.role_names if role not in adapters]
    if missing:
        raise ValueError(f"adapters: roles {missing} of the adapter config have no directory; got {list(adapters)}")
    model = apply_mor(base, config)
    for role, directory in adapters.items():
        load_role(model, directory, role)
    model.eval()
    return model, tokenizer
