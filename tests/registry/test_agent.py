"""register_agent and resolve_model against a real MLflow SQLite store and real files."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from mor.registry import (
    STATUS_TAG,
    BaseModelRef,
    RegistryError,
    TrackingSession,
    register_agent,
    resolve_model,
    tracking_client,
    unregister_agent,
)
from mor.settings import Settings

from .conftest import AgentParts

BUILTIN = BaseModelRef("builtin", "tiny-llama")


def _register(session: TrackingSession, parts: AgentParts, name: str, **kwargs: object):
    return register_agent(
        session,
        model_name=name,
        base=BUILTIN,
        adapters=parts.adapters,
        tokenizer=parts.tokenizer,
        spec_text=parts.spec_text,
        base_weights=parts.base_model,
        **kwargs,
    )


def test_register_then_resolve_gives_back_the_same_model(
    mlflow_settings: Settings, unique_name: str, agent_parts: AgentParts, tmp_path: Path
) -> None:
    from transformers import LlamaForCausalLM, PreTrainedTokenizerFast

    with TrackingSession.start(mlflow_settings, experiment=unique_name) as session:
        registered = _register(session, agent_parts, unique_name, alias="candidate")
    assert (registered.name, registered.version, registered.alias) == (unique_name, "1", "candidate")
    assert registered.alias_uri == f"models:/{unique_name}@candidate"
    client = tracking_client(mlflow_settings)
    version = client.get_model_version_by_alias(unique_name, "candidate")
    assert str(version.version) == "1"
    assert version.run_id == session.run_id
    assert version.tags[STATUS_TAG] == "ready"
    assert version.tags["mor.base.name"] == "tiny-llama"

    agent = resolve_model(f"models:/{unique_name}@candidate", mlflow_settings)
    assert (agent.model_name, agent.version, agent.run_id) == (unique_name, "1", session.run_id)
    assert agent.root.is_relative_to(mlflow_settings.cache_dir)
    assert agent.roles == ["reasoner", "executor", "summarizer"]
    assert agent.spec_text == agent_parts.spec_text
    for role, source in agent_parts.adapters.items():
        assert (agent.adapters[role] / "adapter.safetensors").read_bytes() == (
            source / "adapter.safetensors"
        ).read_bytes()
    assert agent.base_weights_dir is not None
    reloaded = LlamaForCausalLM.from_pretrained(agent.base_weights_dir).eval()
    tokens = torch.tensor([[1, 2, 3, 4, 0]])
    with torch.no_grad():
        assert torch.equal(reloaded(tokens).logits, agent_parts.base_model(tokens).logits)
    tokenizer = PreTrainedTokenizerFast.from_pretrained(agent.tokenizer_dir)
    assert tokenizer("call get_weather city Paris")["input_ids"] == [1, 2, 3, 4]

    # The same version by number, by "latest", into an explicit destination, and again from the cache.
    assert resolve_model(f"models:/{unique_name}/1", mlflow_settings).root == agent.root
    assert resolve_model(f"models:/{unique_name}/latest", mlflow_settings).version == "1"
    copy = resolve_model(f"models:/{unique_name}/1", mlflow_settings, destination=tmp_path / "copy")
    assert copy.root == tmp_path / "copy" and copy.roles == agent.roles
    from_run = resolve_model(f"runs:/{session.run_id}/agent", mlflow_settings)
    assert from_run.version is None and from_run.run_id == session.run_id and from_run.roles == agent.roles
    # A local directory resolves to itself.
    assert resolve_model(str(agent.root), mlflow_settings).adapters == agent.adapters


def test_a_second_registration_moves_the_alias(
    mlflow_settings: Settings, unique_name: str, agent_parts: AgentParts
) -> None:
    with TrackingSession.start(mlflow_settings, experiment=unique_name) as session:
        first = _register(session, agent_parts, unique_name, alias="candidate")
        second = _register(session, agent_parts, unique_name, alias="candidate", artifact_path="agent-2")
    assert (first.version, second.version) == ("1", "2")
    client = tracking_client(mlflow_settings)
    assert str(client.get_model_version_by_alias(unique_name, "candidate").version) == "2"
    assert resolve_model(f"models:/{unique_name}@candidate", mlflow_settings).version == "2"


def test_a_failed_upload_leaves_the_registry_as_it_was(
    mlflow_settings: Settings, unique_name: str, agent_parts: AgentParts
) -> None:
    client = tracking_client(mlflow_settings)
    with TrackingSession.start(mlflow_settings, experiment=unique_name) as session:
        _register(session, agent_parts, unique_name, alias="candidate")
        # A real unreadable file: a symlink to nowhere inside the executor's adapter directory.
        os.symlink(
            agent_parts.adapters["executor"] / "gone.safetensors",
            agent_parts.adapters["executor"] / "extra.safetensors",
        )
        with pytest.raises(RegistryError) as error:
            _register(session, agent_parts, unique_name, alias="candidate", artifact_path="agent-2")
    message = str(error.value)
    assert "uploading adapters/executor" in message
    assert f"version 2 of '{unique_name}' was deleted" in message
    assert "alias 'candidate' points at version 1" in message
    versions = client.search_model_versions(f"name = '{unique_name}'")
    assert [str(v.version) for v in versions] == ["1"]
    assert str(client.get_model_version_by_alias(unique_name, "candidate").version) == "1"
    assert [item.path for item in client.list_artifacts(session.run_id)] == ["agent"]
    assert client.get_run(session.run_id).info.status == "FINISHED"


def test_a_failed_first_registration_leaves_no_model(
    mlflow_settings: Settings, unique_name: str, agent_parts: AgentParts
) -> None:
    os.symlink(agent_parts.adapters["summarizer"] / "gone", agent_parts.adapters["summarizer"] / "weights.bin")
    with TrackingSession.start(mlflow_settings, experiment=unique_name) as session:
        with pytest.raises(RegistryError, match="uploading adapters/summarizer"):
            _register(session, agent_parts, unique_name, alias="candidate")
    client = tracking_client(mlflow_settings)
    assert client.search_registered_models(f"name = '{unique_name}'") == []
    assert client.list_artifacts(session.run_id) == []
    with pytest.raises(RegistryError, match="was not found"):
        resolve_model(f"models:/{unique_name}@candidate", mlflow_settings)


def test_bad_names_are_refused_before_anything_is_created(
    mlflow_settings: Settings, unique_name: str, agent_parts: AgentParts
) -> None:
    with TrackingSession.start(mlflow_settings, experiment=unique_name) as session:
        with pytest.raises(RegistryError) as error:
            _register(session, agent_parts, "team/agent", alias="v3")
        with pytest.raises(RegistryError, match="base_weights: required"):
            register_agent(
                session,
                model_name=unique_name,
                base=BUILTIN,
                adapters=agent_parts.adapters,
                tokenizer=agent_parts.tokenizer,
                spec_text="",
            )
    assert "register.model_name: got 'team/agent'" in str(error.value)
    assert "register.alias: got 'v3'" in str(error.value)
    assert tracking_client(mlflow_settings).search_registered_models(f"name = '{unique_name}'") == []


def test_an_incomplete_version_is_not_resolved(mlflow_settings: Settings, unique_name: str) -> None:
    client = tracking_client(mlflow_settings)
    client.create_registered_model(unique_name)
    client.create_model_version(unique_name, "file:///nowhere", tags={STATUS_TAG: "pending"})
    with pytest.raises(RegistryError, match="tagged mor.status='pending'"):
        resolve_model(f"models:/{unique_name}/1", mlflow_settings)


@pytest.mark.parametrize(
    ("uri", "match"),
    [
        ("models:/a/b/c", "is not a valid URI"),
        ("models:/name/one", "version 'one' must be a number"),
        ("/definitely/not/here", "neither a models:/ or runs:/ URI nor an existing directory"),
    ],
)
def test_bad_uris_are_explained(mlflow_settings: Settings, uri: str, match: str) -> None:
    with pytest.raises(RegistryError, match=match):
        resolve_model(uri, mlflow_settings)


def test_unregister_undoes_a_registration_after_a_later_failure(
    mlflow_settings: Settings, unique_name: str, agent_parts: AgentParts
) -> None:
    client = tracking_client(mlflow_settings)
    with TrackingSession.start(mlflow_settings, experiment=unique_name) as session:
        first = _register(session, agent_parts, unique_name, alias="candidate")
        second = _register(session, agent_parts, unique_name, alias="candidate", artifact_path="agent-2")
        assert (second.previous_alias_version, second.created_model) == ("1", False)
        unregister_agent(session, second)  # e.g. the eval stage failed after registering
        assert str(client.get_model_version_by_alias(unique_name, "candidate").version) == "1"
        assert [str(v.version) for v in client.search_model_versions(f"name = '{unique_name}'")] == ["1"]
        assert [item.path for item in client.list_artifacts(session.run_id)] == ["agent"]
        assert (first.previous_alias_version, first.created_model) == (None, True)
        unregister_agent(session, first)
    assert client.search_registered_models(f"name = '{unique_name}'") == []
    assert client.list_artifacts(session.run_id) == []


def test_unregister_leaves_an_alias_moved_on_by_a_later_registration(
    mlflow_settings: Settings, unique_name: str, agent_parts: AgentParts
) -> None:
    client = tracking_client(mlflow_settings)
    with TrackingSession.start(mlflow_settings, experiment=unique_name) as session:
        _register(session, agent_parts, unique_name, alias="candidate")
        second = _register(session, agent_parts, unique_name, alias="candidate", artifact_path="agent-2")
        _register(session, agent_parts, unique_name, alias="candidate", artifact_path="agent-3")
        unregister_agent(session, second)
    assert str(client.get_model_version_by_alias(unique_name, "candidate").version) == "3"
    assert sorted(str(v.version) for v in client.search_model_versions(f"name = '{unique_name}'")) == ["1", "3"]
