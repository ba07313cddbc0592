"""The adapter choice and the ablations as spec settings, and the ablation specs of jobs/ablation."""

from __future__ import annotations

from pathlib import Path

import pytest

from mor.model import SHARED_GROUP, LoRAConfig, MoRConfig
from mor.spec import SpecError, TrainJobSpec, load_spec, parse_spec

REPO = Path(__file__).resolve().parents[2]
HEAD = """\
kind: train
name: t
base_model: {builtin: tiny-llama}
data: {sources: [{synthetic: {tools: 8, trajectories: 60}}]}
"""


def _spec(mor: str) -> TrainJobSpec:
    spec = parse_spec(HEAD + f"mor: {mor}\n", source="t.yaml")
    assert isinstance(spec, TrainJobSpec)
    return spec


def test_mor_is_the_default_and_lora_takes_rank_alpha_dropout_and_the_role_names() -> None:
    assert _spec("{}").mor.adapter == "mor"
    spec = _spec("{adapter: lora, rank: 64, alpha: 128, dropout: 0.05, roles: {planner: {}, executor: {}}}")
    assert spec.mor.lora_config() == LoRAConfig(
        rank=64, alpha=128, dropout=0.05, target_modules=list(MoRConfig().target_modules), roles=["planner", "executor"]
    )
    assert (spec.mor.loss.aux_weight, spec.mor.loss.orth_weight) == (0.0, 0.0), "a LoRA trains on CE alone"
    again = TrainJobSpec.model_validate(spec.model_dump(mode="json", by_alias=True))
    assert again.mor == spec.mor, "what the Ray workers receive validates again"


def test_each_ablation_is_a_setting() -> None:
    no_routing = _spec("{roles: {reasoner: {routed: 0}, executor: {routed: 0}, summarizer: {routed: 0}}}")
    assert all(role.num_loras == 1 and role.shared for role in no_routing.mor.adapter_config().roles.values())
    one_group = "{routed: 8, top_k: 2}"
    no_split = _spec(f"{{role_split: false, roles: {{reasoner: {one_group}, executor: {one_group}}}}}")
    assert no_split.mor.adapter_config().group_names == [SHARED_GROUP]
    assert _spec("{loss: {aux_weight: 0}}").mor.loss.aux_weight == 0.0
    assert _spec("{loss: {orth_weight: 0}}").mor.loss.orth_weight == 0.0
    assert "adapter" not in _spec("{}").mor.adapter_config().model_dump()


@pytest.mark.parametrize(
    ("mor", "message"),
    [
        ("{adapter: peft}", r"mor.adapter: got 'peft': input should be 'mor' or 'lora'"),
        ("{adapter: lora, loss: {aux_weight: 0.01}}", "mor: adapter: lora: loss: a plain LoRA has no router"),
        ("{role_split: false}", "mor: role_split: false gives every role the same LoRA group, so the roles must agree"),
        (
            "{adapter: lora, role_split: false, roles: {a: {}, b: {}}}",
            "mor: adapter: lora: role_split: false is a MoR ablation",
        ),
        ("{roles: {executor: {routed: 0, shared: false}}}", "routed is 0 and shared is false, so the role has no LoRA"),
    ],
)
def test_settings_that_cannot_run_are_refused_naming_the_field(mor: str, message: str) -> None:
    with pytest.raises(SpecError, match=message):
        _spec(mor)


def test_the_ablation_specs_differ_from_the_reference_in_their_adapter_only() -> None:
    specs = {path.stem: load_spec(path) for path in sorted((REPO / "jobs" / "ablation").glob("[!.]*.yaml"))}
    assert set(specs) == {
        "mor",
        "lora-r64",
        "lora-budget",
        "no-routing",
        "no-role-split",
        "no-aux-loss",
        "no-orth-loss",
    }
    reference = specs["mor"]
    assert isinstance(reference, TrainJobSpec) and reference.mor == _spec("{}").mor, "the paper's setting"
    for name, spec in specs.items():
        assert isinstance(spec, TrainJobSpec)
        assert spec.name == f"ablation-{name}" and spec.register_ is not None
        assert spec.register_.model_name == spec.name
        assert (spec.base_model, spec.data, spec.eval) == (reference.base_model, reference.data, reference.eval)
        assert spec.train.model_dump(exclude={"lr"}) == reference.train.model_dump(exclude={"lr"}), name
        assert path_header(name).startswith(f"# Run with: mor job submit jobs/ablation/{name}.yaml")
    assert specs["lora-r64"].mor.adapter == specs["lora-budget"].mor.adapter == "lora"
    assert specs["no-role-split"].mor.role_split is False
    assert specs["no-aux-loss"].mor.loss.aux_weight == 0.0 and specs["no-orth-loss"].mor.loss.orth_weight == 0.0


def path_header(name: str) -> str:
    return (REPO / "jobs" / "ablation" / f"{name}.yaml").read_text()
