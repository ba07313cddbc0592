"""End to end through `mor job submit` on a real local Ray, a real MLflow SQLite store and SQL results."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from mlflow.tracking import MlflowClient
from sqlalchemy import create_engine, inspect, text
from transformers import AutoModelForCausalLM
from typer.testing import CliRunner

from mor.agent import load_agent_model
from mor.cli.main import app
from mor.cluster import ClusterInfo
from mor.registry import resolve_model
from mor.settings import Settings
from mor_testing import shared_dataset

pytestmark = pytest.mark.slow

TINY = """\
# Run with: mor job submit tiny.yaml
kind: train
name: tiny
base_model: {builtin: tiny-llama}
data: {sources: [{synthetic: {tools: 8, trajectories: 60, seed: 2}}]}
mor:
  rank: 4
  roles: {reasoner: {routed: 2, top_k: 1}, executor: {routed: 2, top_k: 1}, summarizer: {routed: 2, top_k: 1}}
train: {max_steps: 6, batch_size: 2, max_seq_len: 512, workers: 2, checkpoint_every: 3, log_every: 2, lr: 1.0e-3}
register: {model_name: tiny-agent, alias: candidate}
eval: {suites: [synthetic], max_items: 3, max_steps: 2}
"""


def _submit(spec: Path, home: Path, monkeypatch: pytest.MonkeyPatch, **env: str) -> tuple[int, str]:
    monkeypatch.setenv("MOR_HOME", str(home))
    monkeypatch.setenv("COLUMNS", "250")  # one table row per line in the captured output
    for key in ("MLFLOW_TRACKING_URI", "MOR_DATABASE_URL", "RAY_ADDRESS"):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    result = CliRunner().invoke(app, ["job", "submit", str(spec)])
    return result.exit_code, result.output


def test_submit_trains_registers_evaluates_and_stores(
    local_cluster: ClusterInfo, ray_settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = tmp_path / "tiny.yaml"
    spec.write_text(TINY)
    code, output = _submit(spec, ray_settings.home, monkeypatch)
    assert "Submitted job mor-tiny-" in output
    assert "models:/tiny-agent/" in output
    assert "mlflow ui --backend-store-uri sqlite:///" in output

    client = MlflowClient(ray_settings.tracking_uri)
    version = client.get_model_version_by_alias("tiny-agent", "candidate")
    run = client.get_run(version.run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params["mor.rank"] == "4"
    assert run.data.params["train.max_steps"] == "6"
    history = client.get_metric_history(run.info.run_id, "loss")
    assert [m.step for m in history] == [2, 3, 4, 6]  # every log_every (2) and checkpoint_every (3) step
    assert "eval/synthetic/accuracy" in run.data.metrics and "eval/synthetic/items" in run.data.metrics
    assert "eval/synthetic/untrained/accuracy" in run.data.metrics

    engine = create_engine(ray_settings.db_url)
    with engine.connect() as connection:
        runs = connection.execute(text("SELECT id, status, suite, model_uri, summary FROM eval_runs ORDER BY id")).all()
        assert [(status, suite, uri) for _, status, suite, uri, _ in runs] == [
            ("succeeded", "synthetic", "models:/tiny-agent/1"),
            ("succeeded", "synthetic", "untrained:builtin:tiny-llama"),  # the same items with every adapter off
        ]
        for run_id, *_ in runs:
            items = connection.execute(text("SELECT count(*) FROM item_results WHERE run_id = :r"), {"r": run_id})
            assert items.scalar() == 3
        failing = text(
            "SELECT failing_role, count(*) FROM item_results WHERE run_id = :r AND failing_role IS NOT "
            "NULL GROUP BY failing_role"
        )
        roles = [dict(connection.execute(failing, {"r": run_id}).all()) for run_id, *_ in runs]
    engine.dispose()
    assert roles[1], "the untrained base fails its items, each on a role"
    # Both runs, recorded by the job, show their failures by role in `mor eval results`, as any other run.
    listed = {entry["id"]: entry for entry in json.loads(CliRunner().invoke(app, ["eval", "results", "--json"]).output)}
    for (run_id, *_), counts in zip(runs, roles, strict=True):
        summary = listed[run_id]["summary"]
        assert {key: value for key, value in summary.items() if key.startswith("failures/")} == {
            f"failures/{role}": float(count) for role, count in counts.items()
        }
        assert summary["items"] == 3.0
    table = " ".join(CliRunner().invoke(app, ["eval", "results", "--suite", "synthetic"]).output.split())
    for role, count in roles[1].items():
        assert f"{role} {count}" in table
    trained, untrained = (json.loads(row[4])["accuracy"] for row in runs)
    # 6 steps rarely beat the untrained base; either way the exit code and the summary must say which it was.
    if trained > untrained:
        assert code == 0 and "succeeded" in output and "NO BETTER" not in output, output
    else:
        assert code == 3, output
        assert "NO BETTER THAN THE UNTRAINED BASE" in output and "no better than the untrained base" in output
    assert run.data.tags["mor.eval.synthetic.verdict"] == (
        "above_untrained" if trained > untrained else "not_above_untrained"
    )


def test_a_second_job_on_the_same_base_and_items_reuses_the_baseline(
    local_cluster: ClusterInfo, ray_settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The untrained score depends only on the base, the items and the loop: the stored run is reused."""
    spec = tmp_path / "tiny-again.yaml"
    spec.write_text(TINY.replace("name: tiny", "name: tiny-again"))
    code, output = _submit(spec, ray_settings.home, monkeypatch)
    assert code in (0, 3), output
    assert "stored result reused" in output
    engine = create_engine(ray_settings.db_url)
    with engine.connect() as connection:
        uris = connection.execute(text("SELECT model_uri FROM eval_runs ORDER BY id")).scalars().all()
    engine.dispose()
    assert uris == ["models:/tiny-agent/1", "untrained:builtin:tiny-llama", "models:/tiny-again-agent/1"]


def test_registered_version_loads_back_with_identical_outputs(
    local_cluster: ClusterInfo, ray_settings: Settings, tmp_path: Path
) -> None:
    """The version registered by the previous test, loaded twice through the registry, computes the same
    logits, and its adapters differ from a fresh (untrained) MoR model's."""
    first = resolve_model("models:/tiny-agent@candidate", ray_settings)
    second = resolve_model("models:/tiny-agent/1", ray_settings, destination=tmp_path / "copy")
    parts = {}
    for key, agent_dir in (("a", first), ("b", second)):
        parts[key] = load_agent_model(agent_dir)
    model_a, tokenizer = parts["a"]
    model_b, _ = parts["b"]
    ids = torch.tensor([tokenizer("<|user|> weather in Paris <|reasoner|>")["input_ids"]])
    roles = torch.zeros_like(ids)
    roles[:, ids.shape[1] // 2 :] = 1
    with torch.no_grad():
        logits_a = model_a(input_ids=ids, role_ids=roles).logits
        logits_b = model_b(input_ids=ids, role_ids=roles).logits
        base_logits = AutoModelForCausalLM.from_pretrained(first.base_weights_dir)(input_ids=ids).logits
    assert torch.equal(logits_a, logits_b)
    assert not torch.allclose(logits_a, base_logits), "the trained adapters change the outputs"


def test_bad_spec_creates_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "home"
    spec = tmp_path / "bad.yaml"
    spec.write_text(TINY.replace("workers: 2", "workers: 0").replace("top_k: 1}, executor", "top_k: 3}, executor"))
    code, output = _submit(spec, home, monkeypatch)
    assert code == 2
    assert "train.workers: got 0" in output
    assert "mor.roles.reasoner.top_k: got 3, must be ≤ routed (2)" in output
    assert not home.exists(), "no Ray, MLflow or SQL state was created"


def test_failure_after_registration_rolls_back(
    local_cluster: ClusterInfo, ray_settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The results database is unreachable, so the eval stage fails after registering: the version is deleted,
    the alias keeps pointing where it did, and the MLflow run ends FAILED."""
    client = MlflowClient(ray_settings.tracking_uri)
    before = client.get_model_version_by_alias("tiny-agent", "candidate").version
    spec = tmp_path / "tiny.yaml"
    spec.write_text(TINY.replace("name: tiny", "name: tiny-broken"))
    broken_db = "postgresql+psycopg://postgres@127.0.0.1:5432/mor_no_such_database"
    code, output = _submit(spec, ray_settings.home, monkeypatch, MOR_DATABASE_URL=broken_db)
    assert code == 1, output
    assert "FAILED" in output
    versions = client.search_model_versions("name='tiny-agent'")
    assert sorted(v.version for v in versions) == [before]
    assert client.get_model_version_by_alias("tiny-agent", "candidate").version == before
    experiment = client.get_experiment_by_name("tiny-broken")
    runs = client.search_runs([experiment.experiment_id])
    assert [r.info.status for r in runs] == ["FAILED"]
    engine = create_engine(ray_settings.db_url)
    assert "eval_runs" in inspect(engine).get_table_names()
    engine.dispose()


def test_a_submitted_data_job_writes_a_data_set_that_a_submitted_train_job_trains_on(
    local_cluster: ClusterInfo, ray_settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    glaive = shared_dataset("glaive-function-calling-v2") / "glaive_toolcall_en_demo.json"
    data_spec = tmp_path / "data.yaml"
    data_spec.write_text(
        "kind: data\nname: glaive-calls\ndata:\n"
        f"  sources: [{{sharegpt: {{path: {glaive}, limit: 40}}}}]\n  complete: {{}}\n  test_fraction: 0.2\n"
    )
    code, output = _submit(data_spec, ray_settings.home, monkeypatch)
    assert code == 0, output
    assert "data set glaive-calls@1: written" in output and "dataset: glaive-calls@1" in output
    manifest = json.loads((ray_settings.home / "datasets" / "glaive-calls" / "1" / "manifest.json").read_text())
    assert manifest["train"] + manifest["test"] > 30 and manifest["missing"].get("thought", 0) == 0  # completed

    train_spec = tmp_path / "train.yaml"
    train_spec.write_text(
        "kind: train\nname: on-glaive\nbase_model: {builtin: tiny-llama}\n"
        "data: {sources: [{dataset: glaive-calls@1}]}\n"
        "mor:\n  rank: 4\n"
        "  roles: {reasoner: {routed: 2, top_k: 1}, executor: {routed: 2, top_k: 1},\n"
        "          summarizer: {routed: 2, top_k: 1}}\n"
        "train: {max_steps: 2, batch_size: 2, max_seq_len: 1024, workers: 1, log_every: 1}\n"
    )
    code, output = _submit(train_spec, ray_settings.home, monkeypatch)
    assert code == 0, output
    client = MlflowClient(ray_settings.tracking_uri)
    (run,) = client.search_runs([client.get_experiment_by_name("on-glaive").experiment_id])
    (used,) = run.inputs.dataset_inputs
    profile = json.loads(used.dataset.profile)
    assert profile["train"] == manifest["train"] and profile["sources"][0]["format"] == "dataset"
