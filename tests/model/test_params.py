"""Parameter counts: the paper's +0.16B on Llama-3.2-1B and +0.36B on Phi-3.5-mini, built on the meta device."""

from __future__ import annotations

import torch
from transformers import LlamaConfig, LlamaForCausalLM, Phi3Config, Phi3ForCausalLM

from mor.model import MoRConfig, apply_mor, count_parameters

from .conftest import build_base


def _llama_3_2_1b() -> LlamaForCausalLM:
    config = LlamaConfig(
        vocab_size=128256,
        hidden_size=2048,
        intermediate_size=8192,
        num_hidden_layers=16,
        num_attention_heads=32,
        num_key_value_heads=8,
        head_dim=64,
        tie_word_embeddings=True,
        max_position_embeddings=131072,
        rope_theta=500000.0,
    )
    with torch.device("meta"):
        return LlamaForCausalLM(config)


def _phi_3_5_mini() -> Phi3ForCausalLM:
    config = Phi3Config(
        vocab_size=32064,
        hidden_size=3072,
        intermediate_size=8192,
        num_hidden_layers=32,
        num_attention_heads=32,
        num_key_value_heads=32,
        max_position_embeddings=131072,
        tie_word_embeddings=False,
        pad_token_id=32000,
        bos_token_id=1,
        eos_token_id=32000,
    )
    with torch.device("meta"):
        return Phi3ForCausalLM(config)


def test_paper_setting_adds_0_16b_to_llama_3_2_1b() -> None:
    base = _llama_3_2_1b()
    analytic = count_parameters(MoRConfig(), base)
    assert abs(analytic.frozen - 1_235_814_400) < 1_000  # Llama-3.2-1B, tied embeddings counted once
    built = count_parameters(apply_mor(base, MoRConfig()))
    assert built == analytic
    assert abs(built.trainable / 0.16e9 - 1) < 0.03
    assert built.trainable == 162_398_208
    assert built.per_role["reasoner"] == built.per_role["executor"] > built.per_role["summarizer"]


def test_paper_setting_adds_0_36b_to_phi_3_5_mini_through_fused_modules() -> None:
    base = _phi_3_5_mini()
    counted = count_parameters((MoRConfig(), base))
    assert abs(counted.trainable / 0.36e9 - 1) < 0.03
    assert counted.trainable == 360_120_320
    assert abs(counted.frozen / 3.82e9 - 1) < 0.01
    assert count_parameters(apply_mor(base)).trainable == counted.trainable


def test_count_follows_requires_grad_and_roles() -> None:
    model = apply_mor(build_base(), MoRConfig(rank=4))
    total = count_parameters(model)
    model.set_trainable_roles(["executor"])
    only_executor = count_parameters(model)
    assert only_executor.trainable == total.per_role["executor"]
    assert only_executor.frozen == total.frozen + total.trainable - total.per_role["executor"]
    assert total.added_fraction == total.trainable / total.frozen
    assert count_parameters(torch.nn.DataParallel(model)) == only_executor
