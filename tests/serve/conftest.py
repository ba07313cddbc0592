"""Fixtures of the serve tests: a tokenizer and a random MoR model (fast), a small trained agent (once per run of
this folder), and that agent served by a real Ray Serve deployment on a free loopback port."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from mor.base import train_tokenizer
from mor.cluster import job_runtime_env
from mor.data import DEFAULT_ROLES, SyntheticDataset, generate_synthetic, render_text
from mor.model import MoRConfig, MoRModel, apply_mor
from mor.serve import AgentRuntime, KeySet, ServeArgs, build_api, build_app, build_runtime, digest_key
from mor.settings import Settings

from .asgi import KEY, MODEL
from .trained import trained_agent_dir


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
    base = LlamaForCausalLM(
        LlamaConfig(
            vocab_size=len(tokenizer),
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=4,
            tie_word_embeddings=True,
            max_position_embeddings=512,
        )
    )
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
    args = ServeArgs(
        model_uri="unused",
        api_key_digests=[digest_key(KEY)],
        max_completion_tokens=64,
        role_max_tokens={"reasoner": 16, "executor": 48, "summarizer": 12},
        max_steps=3,
        max_request_bytes=20_000,
    )
    runtime = build_runtime(random_mor, tokenizer, args, name=MODEL)
    yield runtime
    runtime.engine.close()


@pytest.fixture(scope="package")
def app(runtime: AgentRuntime) -> Any:
    """The FastAPI app of `runtime`, accepting the test key."""
    return build_api(runtime, KeySet.from_keys([KEY]))


E2E_KEY = "e2e-key-abcdefghij"


@dataclass(frozen=True)
class ServedAgent:
    """The trained agent behind a real Ray Serve deployment."""

    base_url: str
    key: str
    model: str
    port: int
    directory: Path


@pytest.fixture(scope="package")
def agent_dir(request: pytest.FixtureRequest) -> Path:
    """The small trained agent (cached in pytest's cache between runs)."""
    return trained_agent_dir(Path(request.config.cache.mkdir("mor-serve")))


@pytest.fixture(scope="package")
def serve_port() -> int:
    """A free loopback port for Ray Serve's HTTP proxy (never 8000, which a user may be using)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="package")
def served(agent_dir: Path, ray_connected: None, ray_settings: Settings, serve_port: int) -> Iterator[ServedAgent]:
    """`agent_dir` deployed with `build_app` on the session's Ray cluster (Serve on `serve_port`)."""
    from ray import serve

    serve.start(http_options={"host": "127.0.0.1", "port": serve_port})
    args = ServeArgs(
        model_uri=str(agent_dir),
        api_key_digests=[digest_key(E2E_KEY)],
        max_steps=3,
        max_calls=4,
        max_batch_size=64,
        role_max_tokens={"reasoner": 32, "executor": 128, "summarizer": 24},
        torch_threads=1,
    )
    options = {"ray_actor_options": {"num_cpus": 0.5, "runtime_env": job_runtime_env(ray_settings, local=True)}}
    serve.run(build_app(args, **options), name="mor-serve-test", route_prefix="/", blocking=False)
    base_url = f"http://127.0.0.1:{serve_port}/v1"
    deadline = time.monotonic() + 120
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{serve_port}/health", timeout=5).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"the test deployment did not answer on port {serve_port}")
        time.sleep(0.5)
    try:
        yield ServedAgent(
            base_url=base_url, key=E2E_KEY, model="serve-test-agent", port=serve_port, directory=agent_dir
        )
    finally:
        serve.shutdown()  # removes the application and stops the proxy: the port is free again
