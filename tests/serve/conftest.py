"""Fixtures of the serve tests: a tokenizer and a random MoR model (fast), a small trained agent (once per run of
this folder), and that agent served by a real Ray Serve deployment on a free loopback port."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from mor.base import train_tokenizer
from mor.data import DEFAULT_ROLES, SyntheticDataset, generate_synthetic, render_text
from mor.model import MoRConfig, MoRModel, apply_mor
from mor.serve import AgentRuntime, KeySet, ServeArgs, build_api, build_runtime, digest_key

from .asgi import KEY, MODEL


@pytest.fixture(scope="package")
def dataset() -> SyntheticDataset:
    """A small synthetic tool-use data set."""
    return generate_synthetic(tools=12, trajectories=120, seed=7, test_fraction=0.2)


@pytest.fixture(scope="package")
def tokenizer(dataset: SyntheticDataset):
    """A byte-level tokenizer with the role markers as special tokens."""
    return train_tokenizer([render_text(t) for t in dataset.train], roles=DEFAULT_ROLES, vocab_size=512)


@pytest.fixture(scope="package")
def random_mor(tokenizer) -> MoRModel:
    """An untrained tiny MoR model whose adapters differ per role (random, not zero)."""
    torch.manual_seed(0)
    base = LlamaForCausalLM(LlamaConfig(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128,
                                        num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=4,
                                        tie_word_embeddings=True, max_position_embeddings=512))
    roles = {name: {"routed": 2, "top_k": 1, "shared": True} for name in DEFAULT_ROLES}
    model = apply_mor(base, MoRConfig(rank=4, alpha=8, roles=roles))
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "mor_roles" in name:
                parameter.normal_(0.0, 0.3)
    return model.eval()


@pytest.fixture(scope="package")
def runtime(random_mor: MoRModel, tokenizer) -> Iterator[AgentRuntime]:
    """The untrained model behind a runtime with small budgets (its engine thread runs until the package ends)."""
    args = ServeArgs(model_uri="unused", api_key_digests=[digest_key(KEY)], max_completion_tokens=64,
                     role_max_tokens={"reasoner": 16, "executor": 48, "summarizer": 12}, max_steps=3,
                     max_request_bytes=20_000)
    runtime = build_runtime(random_mor, tokenizer, args, name=MODEL)
    yield runtime
    runtime.engine.close()


@pytest.fixture(scope="package")
def app(runtime: AgentRuntime) -> Any:
    """The FastAPI app of `runtime`, accepting the test key."""
    return build_api(runtime, KeySet.from_keys([KEY]))
