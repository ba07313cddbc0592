"""The plain-LoRA baseline: PEFT's LoRA on MoR's target modules, the MoRModel surface, PEFT's saved format."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from peft import PeftModel
from safetensors.torch import load_file

from mor.model import (
    LoRAConfig,
    LoRAModel,
    MoRConfig,
    MoRConfigError,
    MoRLoadError,
    adapter_kind,
    adapter_role_names,
    apply_lora,
    count_parameters,
    load_adapter,
    load_lora,
    lora_rank_for_budget,
    save_adapter,
    save_lora,
)

from .conftest import VOCAB, build_base


def _perturb_lora(model: torch.nn.Module, seed: int = 1) -> None:
    """Random LoRA weights (PEFT starts B at zero, which would make every check trivially pass)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "lora_" in name:
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.05)


def _inputs() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    input_ids = torch.randint(3, VOCAB, (2, 9), generator=generator)
    role_ids = torch.tensor([[0, 0, 0, 1, 1, 1, 2, 2, 2], [2, 2, 0, 2, 0, 1, 1, 2, 0]])
    return input_ids, role_ids


def test_only_the_lora_trains_and_its_count_is_the_analytic_one() -> None:
    model = apply_lora(build_base(), LoRAConfig(rank=4))
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(".lora_A." in name or ".lora_B." in name for name in trainable)
    targets = {name.split(".lora_")[0].rsplit(".", 1)[-1] for name in trainable}
    assert targets == {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}
    built = count_parameters(model)
    analytic = count_parameters(LoRAConfig(rank=4), build_base())
    # 2 layers: attention (q 32x32, k/v 16x32 with 2 kv heads, o 32x32) and MLP (gate/up 48x32, down 32x48)
    per_rank = 2 * ((32 + 32) + 2 * (32 + 16) + (32 + 32) + 2 * (32 + 48) + (48 + 32))
    assert built.trainable == analytic.trainable == 4 * per_rank
    assert built.frozen == analytic.frozen and built.per_role == {}


def test_role_ids_are_accepted_and_ignored_but_role_names_are_checked() -> None:
    model = apply_lora(build_base(), LoRAConfig(rank=4, roles=["reasoner", "executor", "summarizer"]))
    _perturb_lora(model)
    input_ids, role_ids = _inputs()
    with torch.no_grad():
        with_roles = model(input_ids=input_ids, role_ids=role_ids).logits
        all_zero = model(input_ids=input_ids, role_ids=torch.zeros_like(role_ids)).logits
        without = model(input_ids=input_ids).logits
    assert torch.equal(with_roles, all_zero) and torch.equal(with_roles, without)
    assert model.role_names == ["reasoner", "executor", "summarizer"]
    assert float(model.aux_loss()) == 0.0 and float(model.orth_loss()) == 0.0 and model.router_stats() == {}
    generated = model.generate(input_ids=input_ids[:1], role="summarizer", max_new_tokens=3, do_sample=False)
    assert generated.shape == (1, 12)
    with pytest.raises(MoRConfigError, match="role: got 'planner', must be one of"):
        model.generate(input_ids=input_ids[:1], role="planner", max_new_tokens=1)


def test_adapters_off_give_the_base_outputs_and_on_again_the_lora_outputs() -> None:
    base_logits = build_base()(input_ids=_inputs()[0]).logits.detach()
    model = apply_lora(build_base(), LoRAConfig(rank=4))
    _perturb_lora(model)
    input_ids, _ = _inputs()
    with torch.no_grad():
        adapted = model(input_ids=input_ids).logits
        model.disable_adapter_layers()
        off = model(input_ids=input_ids).logits
        model.enable_adapter_layers()
        on = model(input_ids=input_ids).logits
    assert torch.allclose(off, base_logits, atol=1e-6)
    assert not torch.allclose(adapted, base_logits, atol=1e-4)
    assert torch.equal(on, adapted)


def test_saved_in_peft_format_and_loaded_by_peft_alone(tmp_path: Path) -> None:
    model = apply_lora(build_base("phi3"), LoRAConfig(rank=4, alpha=8, dropout=0.1))
    _perturb_lora(model)
    save_lora(model, tmp_path)
    peft_config = json.loads((tmp_path / "adapter_config.json").read_text())
    assert (peft_config["peft_type"], peft_config["r"], peft_config["lora_alpha"]) == ("LORA", 4, 8)
    assert peft_config["lora_dropout"] == 0.1 and peft_config["bias"] == "none"
    assert sorted(peft_config["target_modules"]) == ["down_proj", "gate_up_proj", "o_proj", "qkv_proj"]  # fused
    tensors = load_file(str(tmp_path / "adapter_model.safetensors"))
    assert tensors and all(".lora_A." in key or ".lora_B." in key for key in tensors)
    assert all(t.dtype == torch.float32 for t in tensors.values())
    assert adapter_kind(tmp_path) == "lora" and adapter_role_names(tmp_path) == ["reasoner", "executor", "summarizer"]

    input_ids, _ = _inputs()
    model.eval()
    peft_model = PeftModel.from_pretrained(build_base("phi3"), str(tmp_path)).eval()
    with torch.no_grad():
        expected = model(input_ids=input_ids).logits
        assert torch.allclose(peft_model(input_ids=input_ids).logits, expected, atol=1e-6)
        loaded = load_lora(build_base("phi3"), tmp_path).eval()
        assert torch.allclose(loaded(input_ids=input_ids).logits, expected, atol=1e-6)
    assert not any(p.requires_grad for p in loaded.parameters()), "loaded for inference"
    resumed = load_adapter(build_base("phi3"), tmp_path)
    assert isinstance(resumed, LoRAModel) and any(p.requires_grad for p in resumed.parameters()), "to resume"


def test_a_bfloat16_base_keeps_float32_lora_weights(tmp_path: Path) -> None:
    model = apply_lora(build_base().to(torch.bfloat16), LoRAConfig(rank=4))
    dtypes = {p.dtype for name, p in model.named_parameters() if "lora_" in name}
    assert dtypes == {torch.float32}
    assert save_adapter(model, tmp_path) == tmp_path and (tmp_path / "adapter_model.safetensors").is_file()


def test_a_base_that_does_not_fit_is_refused_naming_the_directory(tmp_path: Path) -> None:
    save_lora(apply_lora(build_base("llama"), LoRAConfig(rank=4)), tmp_path)
    with pytest.raises(MoRLoadError, match=f"{tmp_path}: the base model does not match the LoRA adapter"):
        load_lora(build_base("phi3"), tmp_path)  # no q_proj: its projections are fused, so shapes differ
    with pytest.raises(MoRConfigError, match="target_modules: 'attn' matches no linear layer of LlamaForCausalLM"):
        apply_lora(build_base(), LoRAConfig(target_modules=["attn"]))
    with pytest.raises(MoRLoadError, match="holds no adapter"):
        adapter_kind(tmp_path / "nowhere")


def test_the_rank_for_a_budget_matches_the_mor_adapter_it_is_compared_with() -> None:
    mor = count_parameters(MoRConfig(rank=4), build_base()).trainable
    rank = lora_rank_for_budget(mor, build_base())
    lora = [count_parameters(LoRAConfig(rank=r), build_base()).trainable for r in (rank - 1, rank, rank + 1)]
    assert abs(lora[1] - mor) <= min(abs(lora[0] - mor), abs(lora[2] - mor))
    assert lora_rank_for_budget(1, build_base()) == 1


def test_lora_config_checks_its_roles() -> None:
    with pytest.raises(MoRConfigError, match=r"roles: \['executor'\] listed more than once"):
        LoRAConfig(roles=["executor", "executor"])
    with pytest.raises(MoRConfigError, match="roles: got \\[\\], must name at least one role"):
        LoRAConfig(roles=[])
