"""The same tracking and registry flow on a PostgreSQL backend store (a fresh database per test)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mor.registry import BaseModelRef, TrackingSession, register_agent, resolve_model, tracking_client

from .conftest import AgentParts, make_settings


@pytest.mark.postgres
def test_track_register_and_resolve_on_postgres(postgres_url: str, tmp_path: Path, agent_parts: AgentParts) -> None:
    settings = make_settings(tmp_path / "home", tracking_uri=postgres_url)
    with TrackingSession.start(settings, experiment="pg-quickstart") as session:
        session.log_spec({"name": "pg-quickstart", "train": {"workers": 2}}, spec_text=agent_parts.spec_text)
        for step in range(3):
            session.log_metrics({"loss": 3.0 - step}, step=step)
        registered = register_agent(
            session,
            model_name="pg-agent",
            base=BaseModelRef("builtin", "tiny-llama"),
            adapters=agent_parts.adapters,
            tokenizer=agent_parts.tokenizer,
            spec_text=agent_parts.spec_text,
            base_weights=agent_parts.base_model,
            alias="candidate",
        )
    client = tracking_client(settings)
    run = client.get_run(session.run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params["train.workers"] == "2"
    assert [m.value for m in client.get_metric_history(session.run_id, "loss")] == [3.0, 2.0, 1.0]
    assert registered.version == "1"
    agent = resolve_model("models:/pg-agent@candidate", settings)
    assert agent.version == "1" and agent.roles == ["reasoner", "executor", "summarizer"]
    assert agent.base_weights_dir is not None and (agent.base_weights_dir / "model.safetensors").is_file()
