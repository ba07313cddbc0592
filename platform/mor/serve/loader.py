"""Loading the agent a replica serves: registry URI or directory → MoR model, tokenizer, engine, runtime."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mor.agent import load_agent_model
from mor.model import MoRModel
from mor.serve.args import ServeArgs
from mor.serve.engine import BatchEngine
from mor.serve.runtime import AgentRuntime
from mor.settings import Settings

__all__ = ["LoadedAgent", "build_runtime", "load_agent", "served_name"]


@dataclass
class LoadedAgent:
    """A loaded agent: its model (eval mode), tokenizer and where it came from."""

    model: MoRModel
    tokenizer: Any
    uri: str
    name: str


def served_name(uri: str, model_name: str | None, root: Path | None) -> str:
    """The model id clients use: the registered model name, else the agent directory's name."""
    if model_name:
        return model_name
    if root is not None:
        return root.resolve().name
    return uri


def load_agent(model_uri: str, settings: Settings) -> LoadedAgent:
    """Resolve `model_uri` (registry or directory) and load the MoR model and tokenizer.

    Raises `mor.registry.RegistryError` for a URI that names nothing loadable.
    """
    from mor.registry import resolve_model

    agent_dir = resolve_model(model_uri, settings)
    model, tokenizer = load_agent_model(agent_dir)
    return LoadedAgent(
        model=model,
        tokenizer=tokenizer,
        uri=model_uri,
        name=served_name(model_uri, agent_dir.model_name, agent_dir.root),
    )


def _logits_size(model: Any) -> int:
    output = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    if output is not None and hasattr(output, "weight"):
        return int(output.weight.shape[0])
    return int(model.config.vocab_size)


def build_runtime(model: MoRModel, tokenizer: Any, args: ServeArgs, *, name: str) -> AgentRuntime:
    """The runtime (with a started engine) serving `model` under the model id `name`."""
    base = model.base_model
    config = getattr(base, "config", None)
    max_positions = getattr(config, "max_position_embeddings", None)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else (tokenizer.eos_token_id or 0)
    model.eval()
    engine = BatchEngine(
        model,
        role_aware=True,
        pad_token_id=int(pad),
        mode=args.batching,
        max_batch_size=args.max_batch_size,
        max_prefill_tokens=args.max_prefill_tokens,
        max_positions=max_positions,
        torch_threads=args.torch_threads,
    ).start()
    runtime = AgentRuntime(
        tokenizer=tokenizer,
        roles=model.role_names,
        engine=engine,
        args=args,
        model_name=args.served_model_name or name,
        logits_size=_logits_size(base),
        max_positions=max_positions,
    )
    runtime.accept_model_names(name)
    runtime.vocab.ll_tokenizer()  # built once here rather than inside the first request
    runtime.vocab.ids_of_text("")  # decodes every token once (the reasoner's handover masks look tokens up)
    return runtime
