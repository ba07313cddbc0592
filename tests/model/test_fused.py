"""The fused training path: no host synchronisation inside MoR layers, and a bounded operator count per layer."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from peft import LoraConfig, get_peft_model
from transformers import DynamicCache, LlamaConfig, LlamaForCausalLM

from mor.model import MoRConfig, RoleConfig, apply_mor
from mor.model.cache import cache_argument_name
from mor.model.context import build_routing_plan
from mor.model.fused import FusedLayout, fused_deltas
from mor.model.profiling import SYNCING_OPERATORS, OperatorCounts, count_operators

TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def _llama(layers: int) -> LlamaForCausalLM:
    torch.manual_seed(0)
    config = LlamaConfig(
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=4,
        vocab_size=128,
    )
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
        model.zero_grad(set_to_none=True)  # as the training step does
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

    def step() -> None:
        model.zero_grad(set_to_none=True)
        model(input_ids=input_ids, labels=input_ids).loss.backward()

    return step


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


def test_operator_count_per_adapted_module_meets_the_gpu_target() -> None:
    """Issue 11's count target: at most 2x PEFT LoRA r=64's operators per adapted module per training step.

    Was 9.6x before the fused path, 3.0x with autograd replaying the fused math; 1.97x (148.8 vs 75.6) with the
    hand-written backward and q/k/v, gate/up sharing one call. Of what is left, per module: the gradients of the
    three roles' `up` parameters are column slices of one matmul, which AccumulateGrad copies.
    """
    base = count_operators(_base_step(2))
    mor = _per_module(count_operators(_mor_step(2)), base, 2)
    lora = _per_module(count_operators(_lora_step(2)), base, 2)
    assert mor <= 2.0 * lora, f"MoR {mor:.1f} vs LoRA r=64 {lora:.1f} operators per module"


def test_layout_pads_routers_and_points_each_lora_at_its_coefficient() -> None:
    # roles: (routed, top_k, shared, down rows) at rank 2; role 1 has no shared LoRA, role 2 no routed experts
    layout = FusedLayout.build(
        [(3, 2, True, 4 * 2 + 3 + 1), (2, 5, False, 2 * 2 + 2), (0, 0, True, 1 * 2 + 1)], 2, torch.device("cpu")
    )
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
            model(
                input_ids=prompt,
                use_cache=True,
                **{cache_argument_name(model): cache},
                **{name: value.expand(1, 16) for name, value in role.items()},
            )
            model(input_ids=new_token, use_cache=True, **{cache_argument_name(model): cache}, **role)

    return step


def test_decode_operator_count_per_adapted_module_is_within_1_3x_of_lora() -> None:
    """One decoding step (prefill and decode profiled together; the same prefill for every model)."""
    base = count_operators(_decode_step(_llama(2)))
    lora = count_operators(_decode_step(get_peft_model(_llama(2), LoraConfig(r=64, target_modules=TARGETS))))
    mor = count_operators(_decode_step(apply_mor(_llama(2), MoRConfig()), role_ids=torch.ones(1, 1, dtype=torch.long)))
    mor_per_module, lora_per_module = _per_module(mor, base, 2), _per_module(lora, base, 2)
    assert mor_per_module <= 1.3 * lora_per_module, (mor_per_module, lora_per_module)


def _fused_inputs(config: MoRConfig, layers: int, seed: int) -> tuple[torch.Tensor, list[torch.Tensor], FusedLayout]:
    """A float64 input and `layers` sibling layers' random role parameters (downs then ups, layer after layer)."""
    generator = torch.Generator().manual_seed(seed)
    in_features, out_features = 6, 5
    downs, ups, rows = [], [], []
    for _ in range(layers):
        for role in config.roles.values():
            down_rows = role.num_loras * config.rank + role.routed + int(role.shared)
            downs.append(torch.randn(down_rows, in_features, generator=generator, dtype=torch.float64))
            ups.append(
                torch.randn(out_features, role.num_loras * config.rank, generator=generator, dtype=torch.float64)
            )
    for role in config.roles.values():
        rows.append(
            (
                role.routed,
                min(role.top_k, role.routed),
                role.shared,
                role.num_loras * config.rank + role.routed + int(role.shared),
            )
        )
    x = torch.randn(7, in_features, generator=generator, dtype=torch.float64)
    return x, [*downs, *ups], FusedLayout.build(rows, config.rank, torch.device("cpu"))


_UNEVEN_ROLES = MoRConfig(
    rank=2,
    roles={
        "reasoner": RoleConfig(routed=4, top_k=3, shared=True),
        "executor": RoleConfig(routed=2, top_k=1, shared=False),
        "summarizer": RoleConfig(routed=0, shared=True),
    },
)


@pytest.mark.parametrize(
    ("config", "layers", "dropout"),
    [
        (MoRConfig(rank=2), 1, 0.0),
        (MoRConfig(rank=2), 3, 0.0),
        (_UNEVEN_ROLES, 2, 0.0),
        (_UNEVEN_ROLES, 1, 0.4),
    ],
    ids=["paper", "three_siblings", "uneven_roles", "dropout"],
)
def test_hand_written_backward_matches_numerical_gradients(config: MoRConfig, layers: int, dropout: float) -> None:
    """`gradcheck` (float64) of the fused deltas and balance losses with respect to the input and every parameter."""
    x, parameters, layout = _fused_inputs(config, layers, seed=len(config.roles) + layers)
    role_ids = torch.tensor([0, 1, 2, 2, 0, 1, 0])
    weights = torch.randn(layers, 7, 5, generator=torch.Generator().manual_seed(9), dtype=torch.float64)
    names = [f"layer{m}" for m in range(layers)]
    roles = len(config.roles)

    def loss(x: torch.Tensor, *parameters: torch.Tensor) -> torch.Tensor:
        torch.manual_seed(0)  # the same dropout mask in every evaluation
        plan = build_routing_plan(role_ids, roles)
        layer_params = [
            (parameters[m * roles : (m + 1) * roles], parameters[(layers + m) * roles : (layers + m + 1) * roles])
            for m in range(layers)
        ]
        deltas, records = fused_deltas(x, layer_params, layout, plan, scaling=0.5, dropout=dropout, record_as=names)
        total = sum((delta * weight).sum() for delta, weight in zip(deltas, weights, strict=False))
        return total + sum(record.aux_loss.sum() * (m + 1) for m, record in enumerate(records))

    inputs = [x.requires_grad_(True), *(p.requires_grad_(True) for p in parameters)]
    assert torch.autograd.gradcheck(loss, inputs, eps=1e-6, atol=1e-5)


def test_a_sibling_delta_left_unused_gets_zero_gradients() -> None:
    config = MoRConfig(rank=2)
    x, parameters, layout = _fused_inputs(config, 2, seed=4)
    for parameter in parameters:
        parameter.requires_grad_(True)
    plan = build_routing_plan(torch.tensor([0, 1, 2, 2, 0, 1, 0]), 3)
    deltas, _ = fused_deltas(
        x, [(parameters[0:3], parameters[6:9]), (parameters[3:6], parameters[9:12])], layout, plan, scaling=1.0
    )
    deltas[0].sum().backward()  # the second layer's delta is never used
    assert all(p.grad is not None and torch.count_nonzero(p.grad) > 0 for p in parameters[6:9])
    assert all(p.grad is None or torch.count_nonzero(p.grad) == 0 for p in parameters[9:12])
