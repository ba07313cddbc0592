"""The spec sections: the GPU training options of `train`, the load dtype of `base_model`, and the `mor` section,
which is the model's MoRConfig (its checks and messages) plus the loss weights."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from mor.model import MoRConfig, MoRConfigError, RoleConfig
from mor.spec import SpecError, load_spec, parse_spec

SPEC = """\
kind: train
name: options
base_model: {builtin: tiny-llama}
data: {sources: [{synthetic: {tools: 8, trajectories: 50}}]}
train: {workers: 2}
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "spec.yaml"
    path.write_text(text)
    return path


def test_defaults_are_todays_behaviour() -> None:
    spec = parse_spec(SPEC)
    assert spec.train.precision == "fp32"
    assert spec.train.gradient_checkpointing is False
    assert spec.train.grad_accum_steps == 1
    assert spec.train.strategy == "ddp"
    assert spec.train.use_gpu is False
    assert spec.base_model.dtype == "float32"


def test_gpu_options_are_accepted() -> None:
    spec = parse_spec(
        SPEC.replace(
            "train: {workers: 2}",
            "train: {workers: 2, use_gpu: true, precision: fp16, strategy: fsdp, gradient_checkpointing: true, "
            "grad_accum_steps: 8}",
        )
    )
    train = spec.train
    assert (train.use_gpu, train.precision, train.strategy, train.gradient_checkpointing, train.grad_accum_steps) == (
        True,
        "fp16",
        "fsdp",
        True,
        8,
    )
    assert parse_spec(SPEC.replace("workers: 2", "workers: 2, precision: bf16")).train.precision == "bf16"


@pytest.mark.parametrize(
    ("base", "dtype"),
    [
        ("{builtin: tiny-llama, dtype: bfloat16}", "bfloat16"),
        ("{hub: org/model, dtype: auto}", "auto"),
        ("{hub: org/model, revision: main, dtype: float16}", "float16"),
    ],
)
def test_base_model_dtype_in_every_form(base: str, dtype: str) -> None:
    spec = parse_spec(SPEC.replace("{builtin: tiny-llama}", base))
    assert spec.base_model.dtype == dtype


@pytest.mark.parametrize(
    ("replace", "by", "pattern"),
    [
        (
            "workers: 2",
            "workers: 2, precision: fp16",
            r"train\.precision: got 'fp16' with use_gpu: false; fp16 mixed precision .* is for CUDA GPUs\. "
            r"On CPU use precision: bf16",
        ),
        (
            "workers: 2",
            "workers: 2, use_gpu: false, strategy: fsdp",
            r"train\.strategy: got 'fsdp' with use_gpu: false; Ray Train's prepare_model wraps a model in FSDP only "
            r"when CUDA is available\. On CPU use strategy: ddp, or set use_gpu: true",
        ),
        (
            "workers: 2",
            "workers: 2, precision: fp8",
            r"train\.precision: got 'fp8': input should be 'fp32', 'bf16' or 'fp16'",
        ),
        ("workers: 2", "workers: 2, strategy: zero3", r"train\.strategy: got 'zero3': input should be 'ddp' or 'fsdp'"),
        (
            "workers: 2",
            "workers: 2, grad_accum_steps: 0",
            r"train\.grad_accum_steps: got 0: input should be greater than or equal to 1",
        ),
        (
            "workers: 2",
            "workers: 2, gradient_checkpointing: maybe",
            r"train\.gradient_checkpointing: got 'maybe': input should be a valid boolean",
        ),
        (
            "{builtin: tiny-llama}",
            "{builtin: tiny-llama, dtype: int8}",
            r"base_model\.dtype: got 'int8': input should be 'auto', 'float32', 'bfloat16' or 'float16'",
        ),
        ("{builtin: tiny-llama}", "{hub: org/model, dtype: half}", r"base_model\.dtype: got 'half'"),
        ("{builtin: tiny-llama}", "{hub: org/model, revison: main}", r"base_model\.revison: unknown key 'revison'"),
    ],
)
def test_bad_options_name_file_and_field(tmp_path: Path, replace: str, by: str, pattern: str) -> None:
    assert replace in SPEC
    with pytest.raises(SpecError, match=pattern) as info:
        load_spec(_write(tmp_path, SPEC.replace(replace, by)))
    assert all(line.startswith(str(tmp_path / "spec.yaml")) for line in str(info.value).splitlines())


def test_gpu_only_options_on_cpu_are_listed_together() -> None:
    with pytest.raises(SpecError) as info:
        parse_spec(SPEC.replace("workers: 2", "workers: 2, precision: fp16, strategy: fsdp"))
    assert sorted(problem.split(":")[0] for problem in info.value.problems) == ["train.precision", "train.strategy"]


def test_the_mor_section_is_the_model_config_plus_loss_weights() -> None:
    spec = parse_spec(
        SPEC + "mor: {rank: 8, alpha: 16, roles: {planner: {routed: 2, top_k: 1}, caller: {routed: 0}}, "
        "loss: {aux_weight: 0.1}}\n"
    )
    assert isinstance(spec.mor, MoRConfig)
    adapters = spec.mor.adapter_config()
    assert type(adapters) is MoRConfig
    assert adapters == MoRConfig(
        rank=8, alpha=16, roles={"planner": RoleConfig(routed=2, top_k=1), "caller": RoleConfig(routed=0)}
    )
    assert (spec.mor.loss.aux_weight, spec.mor.loss.orth_weight) == (0.1, 0.001)
    assert parse_spec(SPEC).mor.adapter_config() == MoRConfig()


@pytest.mark.parametrize(
    "mor",
    [
        "{rank: 0}",
        "{rank: 2048, alpha: 0}",
        "{dropout: 1.5}",
        "{target_modules: []}",
        "{target_modules: [q_proj, q_proj, 'a b']}",
        "{roles: {}}",
        "{roles: {bad-name: {}}}",
        "{roles: {executor: {routed: 4, top_k: 6}, reasoner: {routed: 2, top_k: 0}}}",
        "{roles: {executor: {routed: 0, shared: false}}}",
        "{roles: {executor: {routed: -1}}}",
    ],
)
def test_mor_section_errors_are_the_model_config_errors(mor: str) -> None:
    with pytest.raises(MoRConfigError) as model_error:
        MoRConfig.model_validate(yaml.safe_load(mor))
    with pytest.raises(SpecError) as spec_error:
        parse_spec(SPEC + f"mor: {mor}\n")
    problems = spec_error.value.problems
    assert all(problem.startswith("mor.") for problem in problems)
    assert str(model_error.value) == "MoR config: " + "; ".join(problem.removeprefix("mor.") for problem in problems)
