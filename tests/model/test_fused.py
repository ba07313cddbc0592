"""The fused training path: no host synchronisation inside MoR layers, and a bounded operator count per layer."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from peft import LoraConfig, get_peft_model
from transformers import DynamicCache, LlamaConfig, LlamaForCausalLM

from mor.model import MoRConfig, apply_mor
from mor.model.cache import cache_argument_name
from mor.model.fused import FusedLayout
from mor.model.profiling import SYNCING_OPERATORS, OperatorCounts, count_operators

TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def _llama(layers: int) -> LlamaForCausalLM:
    torch.manual_seed(0)
    config = LlamaConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=layers, num_attention_heads=4,
                         num_key_value_heads=4, vocab_size=128)
    return LlamaForCausalLM(config).train()


def _batch() -> tuple[torch.Tensor, torch.Tensor]:
    input_ids = torch.randint(0, 128, (2, 32), generator=torch.Generator().manual_seed(1))
    role_ids = torch.zeros(2, 32, dtype=torch.long)
    role_ids[:, 8:16], role_ids[:, 16:], role_ids[1, 24:] = 1, 2, 0
    return input_ids, role_ids


def _mor_step(layers: int) -> Callable[[], None]:
    model = apply_mor(_llama(layers), MoRConfig())
    model.set_impl("fused")  # the GPU path ("auto" picks it on a GPU; on a CPU the grouped one)
    input_ids, role_ids = _batch()

    def step() -> None:
        out = model(input_ids=input_ids, role_ids=role_ids, labels=input_ids)
        (out.loss + 0.01 * model.aux_loss()).backward()

    return step


def _base_step(layers: int) -> Callable[[], None]:
    model = _llama(layers).requires_grad_(False)
    model.get_input_embeddings().weight.requires_grad_(True)  # so the backward runs through every layer
    input_ids, _ = _batch()
    return lambda: model(input_ids=input_ids, labels=input_ids).loss.backward()


def _lora_step(layers: int) -> Callable[[], None]:
    model = get_peft_model(_llama(layers), LoraConfig(r=64, lora_alpha=64, target_modules=TARGETS))
    input_ids, _ = _batch()
    return lambda: model(input_ids=input_ids, labels=input_ids).loss.backward()


def _per_module(step: OperatorCounts, base: OperatorCounts, layers: int) -> float:
    return step.minus(base).total / (layers * len(TARGETS))


def test_no_host_sync_inside_mor_layers_in_a_training_step() -> None:
    """No value-reading operator in a training step (MoR layers used to run bincount and .item() per role).

    The routing plan's range check reads min and max with one `tolist` per forward, outside the layers (a copy to
    the host on a GPU, no aten operator on the CPU).
    """
    two, four = count_operators(_mor_step(2)), count_operators(_mor_step(4))
    assert two.syncs == four.syncs == 0, {name: n for name, n in four.by_name.items() if name in SYNCING_OPERATORS}
    for name in ("aten::bincount", "aten::nonzero", "aten::masked_select", "aten::repeat_interleave"):
        assert four.by_name.get(name, 0) == 0, name


def test_operator_count_per_adapted_module_stays_bounded() -> None:
    """aten operator calls per adapted module per training step, over the frozen base, against PEFT LoRA r=64.

    Was 9.6x before the fused path (724 vs 75.5 here); now 3.0x. The bound guards against regressions.
    """
    base = count_operators(_base_step(2))
    mor = _per_module(count_operators(_mor_step(2)), base, 2)
    lora = _per_module(count_operators(_lora_step(2)), base, 2)
    assert mor <= 3.2 * lora, f"MoR {mor:.1f} vs LoRA r=64 {lora:.1f} operators per module"


@pytest.mark.xfail(strict=True, reason="issue 11 target (2x LoRA r=64) not met yet: 3.0x; see the issue note")
def test_operator_count_per_adapted_module_meets_the_gpu_target() -> None:
    base = count_operators(_base_step(2))
    mor = _per_module(count_operators(_mor_step(2)), base, 2)
    lora = _per_module(count_operators(_lora_step(2)), base, 2)
    assert mor <= 2.0 * lora


def test_layout_pads_routers_and_points_each_lora_at_its_coefficient() -> None:
    # roles: (routed, top_k, shared, down rows) at rank 2; role 1 has no shared LoRA, role 2 no routed experts
    layout = FusedLayout.build([(3, 2, True, 4 * 2 + 3 + 1), (2, 5, False, 2 * 2 + 2), (0, 0, True, 1 * 2 + 1)], 2,
                               torch.device("cpu"))
    assert (layout.max_routed, layout.max_top_k, layout.num_loras) == (3, 2, 7)
    assert layout.pad_bias.tolist() == [[0, 0, 0], [0, 0, float("-inf")], [0, 0, 0]]
    assert layout.rank_mask.tolist() == [[1, 1], [1, 1], [1, 0]]
    assert layout.top_k.tolist() == [2, 2, 0]
    # gate/weight table: 4 slots per role (gate, then 3 experts); role 0: gate + 3, role 1: 2 experts, role 2: gate
    assert layout.coefficient_index.tolist() == [0, 1, 2, 3, 5, 6, 8]
    assert layout.lora_role.tolist() == [0, 0, 0, 0, 1, 1, 2]
    routers = layout.row_order[: layout.router_rows].tolist()
    assert routers == [8, 9, 10, 12 + 4, 12 + 5, 12, 18, 18, 18]  # role 2 has none: any row, never used
    assert layout.row_order[layout.router_rows : layout.head_rows].tolist() == [11, 12, 18 + 2]
    assert layout.row_order[layout.head_rows :].tolist() == [*range(0, 8), *range(12, 16), 18, 19]


def _decode_step(model: torch.nn.Module, **role: torch.Tensor) -> Callable[[], None]:
    """Prefill 16 tokens, then decode one token with the KV cache (no gradients)."""
    model.eval()
    prompt = torch.randint(0, 128, (1, 16), generator=torch.Generator().manual_seed(2))
    new_token = torch.tensor([[5]])

    def step() -> None:
        with torch.no_grad():
            cache = DynamicCache()
            model(input_ids=prompt, use_cache=True, **{cache_argument_name(model): cache},
                  **{name: value.expand(1, 16) for name, value in role.items()})
            model(input_ids=new_token, use_cache=True, **{cache_argument_name(model): cache}, **role)

    return step


def test_decode_operator_count_per_adapted_module_is_within_1_3x_of_lora() -> None:
    """One decoding step (prefill and decode profiled together; the same prefill for every model)."""
    base = count_operators(_decode_step(_llama(2)))
    lora = count_operators(_decode_step(get_peft_model(_llama(2), LoraConfig(r=64, target_modules=TARGETS))))
    mor = count_operators(_decode_step(apply_mor(_llama(2), MoRConfig()), role_ids=torch.ones(1, 1, dtype=torch.long)))
    mor_per_module, lora_per_module = _per_module(mor, base, 2), _per_module(lora, base, 2)
    assert mor_per_module <= 1.3 * lora_per_module, (mor_per_module, lora_per_module)
