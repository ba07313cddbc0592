"""Baselines and ablations end to end, each as a train job on a real local Ray, MLflow and SQL store: the plain LoRA
and every MoR ablation train (Ray Train, 2 workers), register, load back (the LoRA also through PEFT alone, in a
process without mor, and behind the server's runtime), are evaluated by the role-gated loop, and compare in one
table with their trainable parameters and training time."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from mlflow.tracking import MlflowClient
from typer.testing import CliRunner

from mor.agent import load_agent_model
from mor.cli.main import app
from mor.evals.ablation import collect_runs, markdown_table, plot_summaries, summarize
from mor.model import SHARED_GROUP, LoRAModel, MoRModel, count_parameters
from mor.pipeline.run import JobSummary, run_train_job
from mor.registry import LocalAgentDir, resolve_model
from mor.settings import Settings
from mor.spec import TrainJobSpec, parse_spec
from mor.store import make_engine
from mor_testing import settings_for

pytestmark = pytest.mark.slow

ROLES = ["reasoner", "executor", "summarizer"]
ROUTED = "{reasoner: {routed: 2, top_k: 1}, executor: {routed: 2, top_k: 1}, summarizer: {routed: 2, top_k: 1}}"
#: The `mor:` section of each variant (tiny settings) and the loss weights it trains with.
VARIANTS = {
    "lora": ("{adapter: lora, rank: 8, alpha: 16}", 0.0, 0.0),
    "no-routing": (
        "{rank: 4, roles: {reasoner: {routed: 0}, executor: {routed: 0}, summarizer: {routed: 0}}}",
        0.01,
        0.001,
    ),
    "no-role-split": (f"{{rank: 4, role_split: false, roles: {ROUTED}}}", 0.01, 0.001),
    "no-aux": (f"{{rank: 4, roles: {ROUTED}, loss: {{aux_weight: 0.0}}}}", 0.0, 0.001),
    "no-orth": (f"{{rank: 4, roles: {ROUTED}, loss: {{orth_weight: 0.0}}}}", 0.01, 0.0),
}
SPEC = """\
kind: train
name: {name}
base_model: {{builtin: tiny-llama}}
data: {{sources: [{{synthetic: {{tools: 8, trajectories: 60, seed: 2}}}}]}}
mor: {mor}
train: {{max_steps: 3, batch_size: 2, max_seq_len: 512, workers: 2, checkpoint_every: 3, log_every: 1, lr: 1.0e-2,
  seed: {seed}}}
register: {{model_name: {name}, alias: candidate}}
eval: {{suites: [synthetic], max_items: 2, max_steps: 2}}
"""


@dataclass
class Trained:
    spec: TrainJobSpec
    summary: JobSummary
    agent_dir: LocalAgentDir


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return settings_for(tmp_path_factory.mktemp("adapters-home"))


@pytest.fixture(scope="module")
def trained(ray_connected: None, settings: Settings) -> dict[str, Trained]:
    """Every variant trained, registered and evaluated once (the LoRA twice, seeds 0 and 1)."""
    jobs = [(name, 0) for name in VARIANTS] + [("lora", 1)]
    done: dict[str, Trained] = {}
    for name, seed in jobs:
        text = SPEC.format(name=name, mor=VARIANTS[name][0], seed=seed)
        spec = parse_spec(text, source=f"{name}.yaml")
        assert isinstance(spec, TrainJobSpec)
        summary = run_train_job(spec, text, settings, job_id=f"{name}-{seed}")
        assert summary.model_uri is not None
        done[f"{name}/{seed}"] = Trained(spec, summary, resolve_model(summary.model_uri, settings))
    return done


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_each_variant_trains_registers_and_is_evaluated(
    name: str, trained: dict[str, Trained], settings: Settings
) -> None:
    job = trained[f"{name}/0"]
    assert job.summary.steps == 3 and job.summary.model_uri == f"models:/{name}/1"
    [evaluation] = job.summary.evals
    assert evaluation["items"] == 2 and 0.0 <= evaluation["metrics"]["accuracy"] <= 1.0
    assert evaluation["baseline"] is not None, "the untrained base scored on the same items"

    run = MlflowClient(settings.tracking_uri).get_run(job.summary.mlflow_run_id)
    metrics = run.data.metrics
    assert run.data.params["mor.adapter"] == ("lora" if name == "lora" else "mor")
    model, _ = load_agent_model(job.agent_dir)
    assert metrics["trainable_params"] == count_parameters(model).trainable > 0
    assert metrics["train_seconds"] > 0 and metrics["resumed_from_step"] == 0
    _, aux_weight, orth_weight = VARIANTS[name]
    weighted = metrics["ce"] + aux_weight * metrics["aux"] + orth_weight * metrics["orth"]
    assert math.isclose(metrics["loss"], weighted, rel_tol=1e-6), "the loss is CE plus the variant's weighted terms"
    if name == "lora":
        assert metrics["aux"] == metrics["orth"] == 0.0
    if name == "no-aux":
        assert 0.01 * metrics["aux"] > 1e-3, "the routers' balance was measured, and left out of the loss"
    if name == "no-orth":
        assert 0.001 * metrics["orth"] > 1e-5 * metrics["loss"], "the orthogonality was measured, and left out"
    if name == "no-routing":
        assert metrics["aux"] == 0.0 and metrics["orth"] == 0.0, "one shared LoRA per role: nothing to route"


@pytest.mark.parametrize(
    ("name", "adapters", "kind"),
    [
        ("lora", ["lora"], LoRAModel),
        ("no-role-split", [SHARED_GROUP], MoRModel),
        ("no-routing", ROLES, MoRModel),
        ("no-aux", ROLES, MoRModel),
    ],
)
def test_the_registered_version_loads_back_with_its_role_names(
    name: str, adapters: list[str], kind: type, trained: dict[str, Trained]
) -> None:
    agent_dir = trained[f"{name}/0"].agent_dir
    assert agent_dir.roles == ROLES and list(agent_dir.adapters) == adapters
    model, tokenizer = load_agent_model(agent_dir)
    assert isinstance(model, kind) and model.role_names == ROLES
    ids = torch.tensor([tokenizer("<|user|> weather in Paris <|reasoner|>")["input_ids"]])
    with torch.no_grad():
        trained_logits = model(input_ids=ids, role_ids=torch.zeros_like(ids)).logits
        model.disable_adapter_layers()
        base_logits = model(input_ids=ids, role_ids=torch.zeros_like(ids)).logits
        model.enable_adapter_layers()
    assert not torch.allclose(trained_logits, base_logits), "the trained adapter changes the outputs"


PEFT_ONLY = """
import json, sys
import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM
base = AutoModelForCausalLM.from_pretrained(sys.argv[1], dtype=torch.float32)
model = PeftModel.from_pretrained(base, sys.argv[2]).eval()
ids = torch.tensor([json.loads(sys.argv[3])])
with torch.no_grad():
    logits = model(input_ids=ids).logits[0, -1]
assert not [name for name in sys.modules if name == "mor" or name.startswith("mor.")], "mor was imported"
print(json.dumps(logits.tolist()))
"""


def test_the_registered_lora_loads_with_peft_alone(trained: dict[str, Trained]) -> None:
    """The version's files, as registered, in a process that imports only transformers and PEFT."""
    agent_dir = trained["lora/0"].agent_dir
    adapter = agent_dir.adapters["lora"]
    assert {"adapter_config.json", "adapter_model.safetensors"} <= {p.name for p in adapter.iterdir()}
    assert json.loads((adapter / "adapter_config.json").read_text())["r"] == 8
    model, tokenizer = load_agent_model(agent_dir)
    ids = tokenizer("<|user|> weather in Paris <|executor|>")["input_ids"]
    output = subprocess.run(
        [sys.executable, "-c", PEFT_ONLY, str(agent_dir.base_weights_dir), str(adapter), json.dumps(ids)],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    peft_logits = torch.tensor(json.loads(output.stdout.strip().splitlines()[-1]))
    with torch.no_grad():
        ours = model(input_ids=torch.tensor([ids])).logits[0, -1]
    assert torch.allclose(peft_logits, ours, atol=1e-5)


def test_the_server_serves_a_lora_version_loaded_through_the_agent_loader(
    trained: dict[str, Trained], settings: Settings
) -> None:
    """`mor serve`'s loader and runtime (its batching engine passes role ids, the LoRA ignores them) answer an
    OpenAI chat request with a LoRA version."""
    from mor.serve import KeySet, ServeArgs, build_api, build_runtime
    from mor.serve.loader import load_agent
    from serve.asgi import KEY, request

    loaded = load_agent(trained["lora/0"].summary.model_uri, settings)
    assert isinstance(loaded.model, LoRAModel) and loaded.name == "lora"
    args = ServeArgs(model_uri="unused", max_completion_tokens=24, max_steps=1)
    runtime = build_runtime(loaded.model, loaded.tokenizer, args, name=loaded.name)
    try:
        assert runtime.roles == ROLES
        tool = {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}
        body = {"model": "lora", "messages": [{"role": "user", "content": "Weather in Oslo?"}], "tools": [tool]}
        response = request(build_api(runtime, KeySet.from_keys([KEY])), "POST", "/v1/chat/completions", body=body)
    finally:
        runtime.engine.close()
    assert response.status_code == 200, response.text
    assert response.json()["choices"][0]["message"]["role"] == "assistant"


def test_the_variants_compare_in_one_table_with_their_cost(
    trained: dict[str, Trained], settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    names = ["lora", *sorted(set(VARIANTS) - {"lora"})]
    engine = make_engine(settings.db_url)
    try:
        runs = collect_runs(engine, settings, suite="synthetic", models=names)
    finally:
        engine.dispose()
    by_variant: dict[str, list] = {}
    for run in runs:
        by_variant.setdefault(run.variant, []).append(run)
    assert [name for name in by_variant if name in VARIANTS] == names
    assert [(run.seed, run.version) for run in by_variant["lora"]] == [(0, "1"), (1, "2")]
    untrained = [name for name in by_variant if name not in VARIANTS]
    assert untrained == ["untrained tiny-llama"], "the base scored once, its run reused by every job"

    summaries = summarize(runs, reference="lora")
    table = markdown_table(summaries)
    lora = next(s for s in summaries if s.variant == "lora")
    assert lora.scores["accuracy"].n == 2 and lora.scores["accuracy"].sd is not None
    params = {s.variant: s.trainable_params.mean for s in summaries if s.trainable_params is not None}
    assert params["lora"] == count_parameters(load_agent_model(trained["lora/0"].agent_dir)[0]).trainable
    assert params["no-role-split"] < params["no-aux"], "one group instead of three"
    assert params["no-routing"] < params["no-aux"], "shared LoRAs only"
    for name in names:
        assert f"| {name} |" in table
    assert "| lora | 2 (0,1) |" in table and "reference" in table
    plot = plot_summaries(summaries, tmp_path / "ablation.png")
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    monkeypatch.setenv("MOR_HOME", str(settings.home))  # the same comparison through the CLI
    for key in ("MLFLOW_TRACKING_URI", "MOR_DATABASE_URL", "RAY_ADDRESS"):
        monkeypatch.delenv(key, raising=False)
    models = [part for name in names for part in ("-m", name)]
    shown = CliRunner().invoke(app, ["eval", "compare", *models, "--reference", "lora", "--json"])
    assert shown.exit_code == 0, shown.output
    rows = {row["variant"]: row for row in json.loads(shown.output)}
    assert {name: rows[name]["trainable_params"]["mean"] for name in names} == params
    assert rows["lora"]["scores"]["accuracy"]["n"] == 2 and rows["no-aux"]["delta"] is not None
