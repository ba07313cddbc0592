"""Agent directories without MLflow: write, read back, detect damage, refuse bad parts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mor.registry import MANIFEST_FILE, BaseModelRef, RegistryError, read_agent_dir, write_agent_dir

from .conftest import AgentParts


def test_write_then_read_round_trips_every_part(tmp_path: Path, agent_parts: AgentParts) -> None:
    written = write_agent_dir(
        tmp_path / "agent",
        base=BaseModelRef("builtin", "tiny-llama"),
        adapters=agent_parts.adapters,
        tokenizer=agent_parts.tokenizer,
        spec_text=agent_parts.spec_text,
        base_weights=agent_parts.base_model,
        model_name="mor-agent",
    )
    agent = read_agent_dir(tmp_path / "agent", verify=True)
    assert agent == written
    assert agent.roles == ["reasoner", "executor", "summarizer"]
    assert agent.base == BaseModelRef("builtin", "tiny-llama")
    assert agent.model_name == "mor-agent"
    assert agent.spec_text == agent_parts.spec_text
    for role, source in agent_parts.adapters.items():
        assert (agent.adapters[role] / "adapter.safetensors").read_bytes() == (
            source / "adapter.safetensors"
        ).read_bytes()
    assert (agent.tokenizer_dir / "tokenizer.json").is_file()
    assert agent.base_weights_dir is not None and (agent.base_weights_dir / "model.safetensors").is_file()
    manifest = json.loads((tmp_path / "agent" / MANIFEST_FILE).read_text())
    assert manifest["adapters"] == {r: f"adapters/{r}" for r in ("reasoner", "executor", "summarizer")}
    assert "adapters/executor/adapter.safetensors" in manifest["files"]


def test_missing_or_changed_files_are_reported(tmp_path: Path, agent_parts: AgentParts) -> None:
    root = tmp_path / "agent"
    write_agent_dir(
        root,
        base=BaseModelRef("hub", "org/model", revision="main"),
        adapters=agent_parts.adapters,
        tokenizer=agent_parts.tokenizer,
        spec_text="x: 1\n",
    )
    config = root / "adapters" / "executor" / "mor_config.json"
    config.write_text(config.read_text().replace("4", "8"))  # same size, different bytes
    assert read_agent_dir(root).base == BaseModelRef("hub", "org/model", revision="main")
    with pytest.raises(RegistryError, match="adapters/executor/mor_config.json: sha256 differs"):
        read_agent_dir(root, verify=True)
    (root / "adapters" / "reasoner" / "adapter.safetensors").unlink()
    with pytest.raises(RegistryError, match="adapters/reasoner/adapter.safetensors: missing"):
        read_agent_dir(root)


def test_bad_parts_are_refused_all_at_once(tmp_path: Path, agent_parts: AgentParts) -> None:
    with pytest.raises(RegistryError) as error:
        write_agent_dir(
            tmp_path / "agent",
            base=BaseModelRef("builtin", "tiny-llama"),
            adapters={"executor": tmp_path / "nowhere", "bad role": agent_parts.adapters["reasoner"]},
            tokenizer=tmp_path / "no-tokenizer",
            spec_text="",
        )
    message = str(error.value)
    assert "adapters.executor:" in message and "is not a directory" in message
    assert "adapters.bad role: role name must match" in message
    assert "tokenizer:" in message
    assert "base_weights: required for the builtin base 'tiny-llama'" in message
    assert not (tmp_path / "agent").exists()


def test_a_directory_without_manifest_is_not_an_agent(tmp_path: Path) -> None:
    with pytest.raises(RegistryError, match="has no mor_agent.json"):
        read_agent_dir(tmp_path)


def test_base_ref_checks_its_kind() -> None:
    with pytest.raises(RegistryError, match="base.kind: got 'gguf'"):
        BaseModelRef("gguf", "x")  # type: ignore[arg-type]
