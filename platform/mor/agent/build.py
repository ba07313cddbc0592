"""Build an agent from a model: a MoR model routes each role to its adapters, a plain model serves every role."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from mor.agent.generator import HFRoleGenerator, MoRRoleGenerator
from mor.agent.loop import Agent, AgentConfig
from mor.data.schema import DEFAULT_ROLES
from mor.model import MoRModel

__all__ = ["build_agent"]


def build_agent(
    model: Any,
    tokenizer: Any,
    *,
    roles: Sequence[str] | None = None,
    config: AgentConfig | None = None,
) -> Agent:
    """An `Agent` over `model` (a `MoRModel` or any Hugging Face causal LM) and the tokenizer it was trained with.

    With a `MoRModel` the roles default to the model's own role list (the order gives the role ids).
    """
    pad = getattr(tokenizer, "pad_token_id", None)
    if isinstance(model, MoRModel):
        names = list(roles) if roles is not None else model.role_names
        if names != model.role_names:
            raise ValueError(f"roles: got {names}, the MoR model was built with {model.role_names}; omit roles")
        return Agent(MoRRoleGenerator(model, pad_token_id=pad), tokenizer, roles=names, config=config)
    return Agent(HFRoleGenerator(model, pad_token_id=pad), tokenizer, roles=roles or DEFAULT_ROLES, config=config)
