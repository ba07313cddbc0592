"""Build an agent from a model, or load one from its files: the one loader evaluation, serving and training jobs use.

A MoR model routes each role to its adapters; a LoRA model (the baseline) and a plain model serve every role with
the same weights. MoR and LoRA agents keep their role names (so the same role prompts); both take role ids.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from mor.agent.generator import HFRoleGenerator, MoRRoleGenerator
from mor.agent.loop import Agent, AgentConfig
from mor.base import load_base
from mor.data.schema import DEFAULT_ROLES
from mor.model import AdapterModel, LoRAModel, MoRModel, load_agent_adapters

__all__ = ["AgentFiles", "build_agent", "load_agent", "load_agent_model"]


class _BaseRef(Protocol):
    kind: str
    name: str
    revision: str | None


class AgentFiles(Protocol):
    """Where an agent's parts are on disk (`mor.registry.LocalAgentDir` is one)."""

    @property
    def base(self) -> _BaseRef: ...

    @property
    def base_weights_dir(self) -> Path | None: ...

    @property
    def adapters(self) -> Mapping[str, Path]: ...

    @property
    def tokenizer_dir(self) -> Path: ...


def build_agent(
    model: Any,
    tokenizer: Any,
    *,
    roles: Sequence[str] | None = None,
    config: AgentConfig | None = None,
) -> Agent:
    """An `Agent` over `model` (a `MoRModel`, a `LoRAModel` or any Hugging Face causal LM) and the tokenizer it was
    trained with.

    With a `MoRModel` or `LoRAModel` the roles default to the model's own role list (the order gives the role ids).
    A `config` without `max_context_tokens` gets the model's context length, so a prompt too long for the model is a
    failure of the role that needed it, not a crash.
    """
    config = config or AgentConfig()
    adapted = isinstance(model, (MoRModel, LoRAModel))
    base = model.base_model if adapted else model
    context = getattr(getattr(base, "config", None), "max_position_embeddings", None)
    if config.max_context_tokens is None and context:
        config = dataclasses.replace(config, max_context_tokens=int(context))
    pad = getattr(tokenizer, "pad_token_id", None)
    if adapted:
        names = list(roles) if roles is not None else model.role_names
        if names != model.role_names:
            kind = "MoR" if isinstance(model, MoRModel) else "LoRA"
            raise ValueError(f"roles: got {names}, the {kind} model was built with {model.role_names}; omit roles")
        return Agent(MoRRoleGenerator(model, pad_token_id=pad), tokenizer, roles=names, config=config)
    return Agent(HFRoleGenerator(model, pad_token_id=pad), tokenizer, roles=roles or DEFAULT_ROLES, config=config)


def load_agent_model(files: AgentFiles) -> tuple[AdapterModel, Any]:
    """The adapter model (eval mode) and tokenizer of an agent: base weights from the agent's own copy when it has
    one (always for builtin bases), else from the path / hub id; then its adapters: every role's MoR group, the one
    group of MoR without role split, or the plain LoRA (`mor.model.load_agent_adapters`)."""
    adapters = dict(files.adapters)
    if not adapters:
        raise ValueError("adapters: got none; an agent holds one adapter directory per role, or one for all roles")
    base_ref = files.base
    if files.base_weights_dir is not None:
        base = AutoModelForCausalLM.from_pretrained(files.base_weights_dir, dtype=torch.float32)
    elif base_ref.kind in ("path", "hub"):
        base, _ = load_base(
            {base_ref.kind: base_ref.name, **({"revision": base_ref.revision} if base_ref.revision else {})}
        )
    else:
        raise ValueError(f"base: a {base_ref.kind} base needs its weights in the agent (base/ is missing)")
    tokenizer = AutoTokenizer.from_pretrained(files.tokenizer_dir)
    model = load_agent_adapters(base, adapters)
    model.eval()
    return model, tokenizer


def load_agent(files: AgentFiles, config: AgentConfig | None = None) -> Agent:
    """The agent stored in `files` (see `load_agent_model` and `build_agent`)."""
    model, tokenizer = load_agent_model(files)
    return build_agent(model, tokenizer, config=config)
