"""Save/load: safetensors + JSON; whole adapter or one role; role swap; base-model checks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from mor.model import MoRConfig, MoRLoadError, apply_mor, load_mor, load_role, read_mor_config, save_mor

from .conftest import VOCAB, build_base, perturb_adapters


def _inputs() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    input_ids = torch.randint(3, VOCAB, (3, 9), generator=generator)
    role_ids = torch.tensor([[0, 0, 0, 1, 1, 1, 2, 2, 2], [0, 2, 0, 2, 0, 2, 2, 2, 0], [1] * 9])
    return input_ids, role_ids


def _logits(model, input_ids: torch.Tensor, role_ids: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(input_ids=input_ids, role_ids=role_ids).logits


def test_save_and_load_round_trip_is_exact(tmp_path: Path) -> None:
    trained = apply_mor(build_base("phi3"), MoRConfig(rank=4, alpha=8))
    perturb_adapters(trained)
    save_mor(trained, tmp_path)
    manifest = json.loads((tmp_path / "mor_config.json").read_text())
    assert manifest["roles"] == ["reasoner", "executor", "summarizer"]
    assert manifest["base_model"]["class"] == "Phi3ForCausalLM"
    assert manifest["base_model"]["modules"]["model.layers.0.self_attn.qkv_proj"] == [96, 32]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "mor_config.json",
        "role-executor.safetensors",
        "role-reasoner.safetensors",
        "role-summarizer.safetensors",
    ]
    tensors = load_file(tmp_path / "role-executor.safetensors")
    assert "model.layers.1.mlp.gate_up_proj.mor_roles.executor.up" in tensors
    assert read_mor_config(tmp_path) == trained.config
    loaded = load_mor(build_base("phi3"), tmp_path)
    input_ids, role_ids = _inputs()
    assert torch.equal(_logits(loaded, input_ids, role_ids), _logits(trained, input_ids, role_ids))


def test_swapping_one_role_keeps_the_other_roles_bitwise(tmp_path: Path) -> None:
    original = apply_mor(build_base())
    perturb_adapters(original, seed=1)
    save_mor(original, tmp_path / "all")
    retrained = apply_mor(build_base())
    perturb_adapters(retrained, seed=2)
    save_mor(retrained, tmp_path / "executor", roles=["executor"])
    assert not (tmp_path / "executor" / "role-reasoner.safetensors").exists()

    swapped = load_mor(build_base(), tmp_path / "all")
    load_role(torch.nn.DataParallel(swapped), tmp_path / "executor", "executor")  # wrapped models are unwrapped
    input_ids, role_ids = _inputs()
    before, after = _logits(original, input_ids, role_ids), _logits(swapped, input_ids, role_ids)
    assert torch.equal(before[1], after[1])  # a row without executor tokens
    assert torch.equal(before[0, :3], after[0, :3])  # tokens before the first executor token
    assert not torch.equal(before[2], after[2])  # the executor row changed ...
    assert torch.equal(after[2], _logits(retrained, input_ids, role_ids)[2])  # ... to the retrained executor
    for name, parameter in swapped.named_parameters():
        source = original if ".executor." not in name else retrained
        assert torch.equal(parameter, dict(source.named_parameters())[name]), name


def test_load_mor_needs_every_role_and_says_how_to_combine(tmp_path: Path) -> None:
    model = apply_mor(build_base())
    save_mor(model, tmp_path, roles=["executor"])
    with pytest.raises(MoRLoadError, match=r"missing \['reasoner', 'summarizer'\].*load_role"):
        load_mor(build_base(), tmp_path)
    with pytest.raises(MoRLoadError, match=r"holds roles \['executor'\], not 'reasoner'"):
        load_role(model, tmp_path, "reasoner")


def test_loading_into_a_different_base_model_says_what_differs(tmp_path: Path) -> None:
    save_mor(apply_mor(build_base("llama")), tmp_path)
    with pytest.raises(MoRLoadError) as error:
        load_mor(build_base("phi3"), tmp_path)
    message = str(error.value)
    assert "the base model does not match the adapter" in message
    assert "modules in the adapter but not in the model: model.layers.0.mlp.down_proj" not in message
    assert "model.layers.0.self_attn.q_proj" in message and "model.layers.0.self_attn.qkv_proj" in message
    from transformers import LlamaConfig, LlamaForCausalLM

    wider = LlamaForCausalLM(
        LlamaConfig(
            vocab_size=VOCAB,
            hidden_size=48,
            intermediate_size=48,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
        )
    )
    with pytest.raises(
        MoRLoadError,
        match=r"shape mismatches: model.layers.0.mlp.down_proj: adapter \(out, in\) \(32, 48\) vs model \(48, 48\)",
    ):
        load_mor(wider, tmp_path)


def test_load_role_refuses_a_role_built_differently(tmp_path: Path) -> None:
    save_mor(apply_mor(build_base(), MoRConfig(rank=4)), tmp_path)
    with pytest.raises(MoRLoadError, match=r"role 'executor' was saved with rank 4 .* the model has rank 16"):
        load_role(apply_mor(build_base()), tmp_path, "executor")
    with pytest.raises(MoRLoadError, match="mor_config.json: not found"):
        load_mor(build_base(), tmp_path / "nowhere")
