"""Fixtures for registry tests: a real MLflow SQLite store in a temp dir, tiny real models, a fresh PG database."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from mor.settings import Settings


def make_settings(home: Path, tracking_uri: str | None = None) -> Settings:
    """Settings that ignore the caller's environment (every field given)."""
    return Settings(
        home=home,
        mlflow_tracking_uri=tracking_uri,
        database_url=None,
        ray_address=None,
        benchmarks_dir=None,
    )


@pytest.fixture(scope="session")
def mlflow_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """One embedded SQLite tracking store for the session (MLflow's first migration takes seconds)."""
    return make_settings(tmp_path_factory.mktemp("mlflow-home"))


@pytest.fixture
def unique_name() -> str:
    """A name no other test uses (experiments and registered models share the session store)."""
    return f"t-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh, uniquely named PostgreSQL database on 127.0.0.1:5432, dropped afterwards.

    Skips when the server is unreachable, except with CI=true where that is a failure.
    """
    import psycopg

    admin = "postgresql://postgres@127.0.0.1:5432/postgres"
    name = f"mor_registry_{uuid.uuid4().hex[:12]}"
    try:
        with psycopg.connect(admin, autocommit=True, connect_timeout=5) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError as exc:
        message = f"PostgreSQL at 127.0.0.1:5432 is unreachable ({exc})"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message + "; with CI=true the postgres tests must run")
        pytest.skip(message)
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    finally:
        with psycopg.connect(admin, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class AgentParts:
    """Real, tiny agent parts: a Llama base model, a fast tokenizer, one safetensors adapter dir per role."""

    def __init__(self, root: Path) -> None:
        import torch
        from safetensors.torch import save_file
        from tokenizers import Tokenizer, models, pre_tokenizers
        from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

        torch.manual_seed(0)
        config = LlamaConfig(
            vocab_size=32,
            hidden_size=16,
            intermediate_size=32,
            num_hidden_layers=1,
            num_attention_heads=2,
            num_key_value_heads=2,
            max_position_embeddings=64,
        )
        self.base_model = LlamaForCausalLM(config).eval()
        vocab = {"[UNK]": 0, "call": 1, "get_weather": 2, "city": 3, "Paris": 4}
        tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
        tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
        self.tokenizer = PreTrainedTokenizerFast(tokenizer_object=tokenizer, unk_token="[UNK]")
        self.adapters: dict[str, Path] = {}
        for index, role in enumerate(("reasoner", "executor", "summarizer")):
            directory = root / "adapters" / role
            directory.mkdir(parents=True)
            generator = torch.Generator().manual_seed(index)
            save_file({"lora_A": torch.randn(4, 16, generator=generator)}, str(directory / "adapter.safetensors"))
            (directory / "mor_config.json").write_text(f'{{"role": "{role}", "rank": 4}}')
            self.adapters[role] = directory
        self.spec_text = "kind: train\nname: registry-test\nbase_model: {builtin: tiny-llama}\n"


@pytest.fixture
def agent_parts(tmp_path: Path) -> AgentParts:
    """Fresh tiny agent parts under tmp_path."""
    return AgentParts(tmp_path / "parts")
