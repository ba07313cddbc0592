"""The Ray Train loop with the GPU training options on CPU: bf16 autocast, gradient checkpointing and gradient
accumulation through the real trainer, and the base loaded in the spec's dtype."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import LlamaConfig, LlamaForCausalLM

from mor.pipeline.prepare import prepare_training
from mor.spec import parse_spec
from mor.train import JsonlMetricsSink, TrainInputs, build_trainer, load_training_base, read_checkpoint

SPEC = """\
kind: train
name: options
base_model: {builtin: tiny-llama}
data: {sources: [{synthetic: {tools: 8, trajectories: 60, seed: 4}}]}
mor:
  rank: 4
  roles: {reasoner: {routed: 2, top_k: 1}, executor: {routed: 2, top_k: 1}, summarizer: {routed: 2, top_k: 1}}
train: {max_steps: 4, batch_size: 2, max_seq_len: 512, workers: 2, checkpoint_every: 2, log_every: 1, lr: 1.0e-2,
  warmup_ratio: 0.0, precision: bf16, gradient_checkpointing: true, grad_accum_steps: 2}
"""


@pytest.mark.slow
def test_bf16_checkpointed_accumulating_training_on_ray(ray_connected: None, tmp_path: Path) -> None:
    spec = parse_spec(SPEC)
    prepared = prepare_training(spec, tmp_path / "cache")
    log = tmp_path / "metrics.jsonl"
    trainer = build_trainer(
        spec,
        TrainInputs(prepared.base_dir, prepared.samples_path, prepared.pad_token_id),
        storage_path=tmp_path / "storage",
        run_name="options",
        metrics_sink=JsonlMetricsSink(log),
    )
    result = trainer.fit()
    assert result.error is None

    records = [json.loads(line) for line in log.read_text().splitlines()]
    assert [int(r["step"]) for r in records] == [1, 2, 3, 4], "log_every counts optimizer steps"
    assert all(math.isfinite(r["loss"]) and math.isfinite(r["grad_norm"]) and r["grad_norm"] > 0 for r in records)
    assert {int(r["total_steps"]) for r in records} == {4}

    adapter_dir, states, state = read_checkpoint(Path(result.checkpoint.path))
    assert state.step == 4
    assert (state.epoch, state.batch_in_epoch) == (0, 8), "two micro-batches per optimizer step"
    assert "scaler" not in states, "bf16 uses no gradient scaler"
    ups = [
        t
        for path in adapter_dir.glob("role-*.safetensors")
        for k, t in load_file(str(path)).items()
        if k.endswith(".up")
    ]
    assert ups and all(t.dtype == torch.float32 for t in ups), "float32 master weights"
    assert sum(float(t.abs().sum()) > 0 for t in ups) == len(ups), "every up-projection left its zero init"


@pytest.mark.parametrize(
    ("dtype", "expected"), [("float32", torch.float32), ("bfloat16", torch.bfloat16), ("auto", torch.float16)]
)
def test_workers_load_the_base_in_the_spec_dtype(tmp_path: Path, dtype: str, expected: torch.dtype) -> None:
    config = LlamaConfig(
        vocab_size=32,
        hidden_size=16,
        intermediate_size=24,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
    )
    LlamaForCausalLM(config).to(torch.float16).save_pretrained(tmp_path)  # auto: the saved dtype
    spec = parse_spec(SPEC.replace("{builtin: tiny-llama}", f"{{path: {tmp_path}, dtype: {dtype}}}"))
    base = load_training_base(tmp_path, spec)
    assert {p.dtype for p in base.parameters()} == {expected}
