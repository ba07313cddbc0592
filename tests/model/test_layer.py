"""The role-grouped MoR layer matches the dense math (outputs and gradients) and routes tokens only to their role."""

from __future__ import annotations

import pickle

import pytest
import torch
from torch import nn

from mor.model import MoRConfig, MoRConfigError, MoRLinear, RoleConfig, apply_mor
from mor.model.context import RoutingState, build_routing_plan
from mor.model.fusion import SharedInputGroup, link_shared_inputs

from .conftest import build_base
from .dense_reference import dense_forward

IN, OUT = 24, 20


def _layer(config: MoRConfig | None = None, seed: int = 0) -> MoRLinear:
    torch.manual_seed(seed)
    base = nn.Linear(IN, OUT)
    base.requires_grad_(False)
    layer = MoRLinear(base, config=config or MoRConfig(rank=4), routing=RoutingState(), name="layer")
    with torch.no_grad():
        for parameter in layer.mor_roles.parameters():
            parameter.normal_(0.0, 0.3)
    return layer


def _layouts() -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(3)
    spans = torch.zeros(2, 16, dtype=torch.long)
    spans[0, 5:11], spans[0, 11:] = 1, 2
    spans[1, :3], spans[1, 3:9], spans[1, 9:] = 2, 0, 1
    return {
        "random": torch.randint(0, 3, (2, 16), generator=generator),
        "contiguous_spans": spans,
        "role_absent": torch.randint(0, 2, (2, 16), generator=generator) * 2,  # roles 0 and 2 only
        "single_role": torch.full((2, 16), 1),
        "one_token": torch.tensor([[2]]),
    }


def _run(layer: MoRLinear, x: torch.Tensor, role_ids: torch.Tensor, *, dense: bool) -> tuple[torch.Tensor, dict]:
    x = x.clone().requires_grad_(True)
    for parameter in layer.parameters():
        parameter.grad = None
    if dense:
        out = dense_forward(layer, x, role_ids)
    else:
        with layer._routing.activate(build_routing_plan(role_ids, len(layer.mor_roles)), record=True):
            out = layer(x)
    weights = torch.linspace(-1.0, 1.0, out.numel()).reshape(out.shape)
    (out * weights).sum().backward()
    grads = {name: p.grad.clone() for name, p in layer.named_parameters() if p.requires_grad}
    grads["x"] = x.grad.clone()
    return out.detach(), grads


@pytest.mark.parametrize("impl", ["fused", "grouped", "dense"])
@pytest.mark.parametrize("layout", sorted(_layouts()))
def test_fast_layer_matches_dense_math_outputs_and_gradients(layout: str, impl: str) -> None:
    layer = _layer()
    layer.impl = impl
    role_ids = _layouts()[layout]
    x = torch.randn(*role_ids.shape, IN, generator=torch.Generator().manual_seed(5))
    fast_out, fast_grads = _run(layer, x, role_ids, dense=False)
    ref_out, ref_grads = _run(layer, x, role_ids, dense=True)
    assert (fast_out - ref_out).abs().max().item() < 1e-4
    assert fast_grads.keys() == ref_grads.keys()
    for name in ref_grads:
        assert (fast_grads[name] - ref_grads[name]).abs().max().item() < 1e-4, name


def test_absent_role_gets_exact_zero_gradient_not_none() -> None:
    layer = _layer()
    role_ids = torch.tensor([[0, 0, 2, 2, 0]])
    _, grads = _run(layer, torch.randn(1, 5, IN), role_ids, dense=False)
    assert torch.count_nonzero(grads["mor_roles.executor.down"]) == 0
    assert torch.count_nonzero(grads["mor_roles.executor.up"]) == 0
    assert torch.count_nonzero(grads["mor_roles.reasoner.up"]) > 0


def test_token_output_depends_only_on_its_own_role_group() -> None:
    layer = _layer()
    role_ids = torch.tensor([[0, 1, 1, 2, 0, 1]])
    x = torch.randn(1, 6, IN)
    plan = build_routing_plan(role_ids, 3)
    with torch.no_grad(), layer._routing.activate(plan, record=False):
        before = layer(x)
        layer.mor_roles["executor"].up.add_(1.0)
        layer.mor_roles["executor"].down.add_(1.0)
        after = layer(x)
    changed = (before - after).abs().amax(dim=-1)[0]
    assert torch.equal(before[0, role_ids[0] != 1], after[0, role_ids[0] != 1])
    assert bool((changed[role_ids[0] == 1] > 0).all())


_FIVE_ROLES = MoRConfig(
    rank=2,
    roles={
        "a": RoleConfig(routed=0, top_k=0, shared=True),
        "b": RoleConfig(routed=3, top_k=1, shared=False),
        "c": RoleConfig(routed=2, top_k=2, shared=True),
        "d": RoleConfig(routed=1, top_k=1, shared=False),
        "e": RoleConfig(routed=5, top_k=4, shared=True),
    },
)
"""Roles with only a shared LoRA, only routed ones, top_k == routed, and a single routed expert."""


def test_five_roles_without_shared_or_routed_experts_match_dense() -> None:
    layer = _layer(_FIVE_ROLES)
    role_ids = torch.randint(0, 5, (3, 7), generator=torch.Generator().manual_seed(9))
    x = torch.randn(3, 7, IN, generator=torch.Generator().manual_seed(2))
    fast_out, fast_grads = _run(layer, x, role_ids, dense=False)
    ref_out, ref_grads = _run(layer, x, role_ids, dense=True)
    assert (fast_out - ref_out).abs().max().item() < 1e-4
    for name in ref_grads:
        assert (fast_grads[name] - ref_grads[name]).abs().max().item() < 1e-4, name


def test_initial_layer_adds_nothing() -> None:
    torch.manual_seed(0)
    base = nn.Linear(IN, OUT)
    layer = MoRLinear(base, config=MoRConfig(rank=4), routing=RoutingState(), name="layer")
    x = torch.randn(2, 5, IN)
    with layer._routing.activate(build_routing_plan(torch.zeros(2, 5, dtype=torch.long), 3), record=False):
        assert torch.equal(layer(x), base(x))


def test_layer_without_role_ids_or_with_wrong_token_count_fails_clearly() -> None:
    layer = _layer()
    with pytest.raises(RuntimeError, match="without role ids"):
        layer(torch.randn(1, 3, IN))
    with layer._routing.activate(build_routing_plan(torch.zeros(1, 4, dtype=torch.long), 3), record=False):
        with pytest.raises(MoRConfigError, match="role_ids: got 4 role ids but layer layer sees 3 tokens"):
            layer(torch.randn(1, 3, IN))


def test_layer_wraps_only_linear_layers() -> None:
    with pytest.raises(MoRConfigError, match="target_modules: 'conv' is a Conv1d"):
        MoRLinear(nn.Conv1d(2, 2, 1), config=MoRConfig(), routing=RoutingState(), name="conv")  # type: ignore[arg-type]


def test_merge_is_refused() -> None:
    with pytest.raises(NotImplementedError, match="cannot be merged"):
        _layer().merge()


def test_dropout_applies_to_lora_input_only_in_training() -> None:
    layer = _layer(MoRConfig(rank=4, dropout=0.5))
    role_ids = torch.tensor([[0, 1, 2, 0]])
    x = torch.randn(1, 4, IN)
    plan = build_routing_plan(role_ids, 3)
    with torch.no_grad(), layer._routing.activate(plan, record=False):
        layer.eval()
        assert torch.equal(layer(x), layer(x))
        assert (layer(x) - dense_forward(layer, x, role_ids)).abs().max().item() < 1e-4
        layer.train()
        torch.manual_seed(0)
        first = layer(x)
        torch.manual_seed(1)
        assert not torch.equal(first, layer(x))


@pytest.mark.parametrize("layout", sorted(_layouts()))
@pytest.mark.parametrize("config", [MoRConfig(rank=4), _FIVE_ROLES], ids=["paper", "five_roles"])
def test_inference_path_matches_dense_math(layout: str, config: MoRConfig) -> None:
    layer = _layer(config).eval()
    role_ids = _layouts()[layout] % len(config.roles)
    x = torch.randn(*role_ids.shape, IN, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        reference = dense_forward(layer, x, role_ids)
        with layer._routing.activate(build_routing_plan(role_ids, len(config.roles)), record=False):
            fast = layer(x)
    assert (fast - reference).abs().max().item() < 1e-4


def test_inference_path_with_bfloat16_adapters_stays_close_to_float32() -> None:
    layer = _layer().eval()
    role_ids = _layouts()["random"]
    x = torch.randn(*role_ids.shape, IN, generator=torch.Generator().manual_seed(6))
    plan = build_routing_plan(role_ids, 3)
    with torch.no_grad(), layer._routing.activate(plan, record=False):
        full = layer(x)
        layer.mor_roles.to(torch.bfloat16)
        low = layer(x)
    assert low.dtype == torch.float32
    assert (low - full).abs().max().item() < 0.05 * full.abs().max().item()


def test_layers_sharing_an_input_fuse_in_inference_and_match_the_grouped_math() -> None:
    mor_model = apply_mor(build_base())
    with torch.no_grad():
        for parameter in mor_model.parameters():
            if parameter.requires_grad:
                parameter.normal_(0.0, 0.3)
    groups = {id(layer.shared_input_group) for _, layer in mor_model.mor_layers() if layer.shared_input_group}
    linked = {name.rsplit(".", 1)[-1] for name, layer in mor_model.mor_layers() if layer.shared_input_group}
    assert linked == {"q_proj", "k_proj", "v_proj", "gate_proj", "up_proj"}
    assert len(groups) == 2 * mor_model.base_model.config.num_hidden_layers
    input_ids = torch.randint(0, 100, (2, 9), generator=torch.Generator().manual_seed(1))
    role_ids = torch.randint(0, 3, (2, 9), generator=torch.Generator().manual_seed(2))
    with torch.enable_grad():
        reference = mor_model(input_ids=input_ids, role_ids=role_ids).logits.detach()
    with torch.no_grad():
        fused = mor_model(input_ids=input_ids, role_ids=role_ids).logits
        for _, layer in mor_model.mor_layers():
            layer.shared_input_group = None
        unfused = mor_model(input_ids=input_ids, role_ids=role_ids).logits
    assert (fused - reference).abs().max().item() < 1e-4
    assert (unfused - reference).abs().max().item() < 1e-4
    for _, layer in mor_model.mor_layers():
        layer.shared_input_group = None
    link_shared_inputs(mor_model.mor_layers())
    copied = pickle.loads(pickle.dumps(mor_model))
    for _, layer in copied.mor_layers():
        group = layer.shared_input_group
        assert group is None or (isinstance(group, SharedInputGroup) and any(m is layer for m in group.layers))
    with torch.no_grad():
        assert torch.equal(copied(input_ids=input_ids, role_ids=role_ids).logits, fused)


def test_a_changed_input_or_weight_is_never_served_a_stale_fused_result() -> None:
    mor_model = apply_mor(build_base())
    q, k = (
        layer
        for name, layer in mor_model.mor_layers()
        if name.endswith(("layers.0.self_attn.q_proj", "layers.0.self_attn.k_proj"))
    )
    group = q.shared_input_group
    assert group is not None and k.shared_input_group is group
    x = torch.randn(1, 4, q.in_features)
    plan = build_routing_plan(torch.zeros(1, 4, dtype=torch.long), 3)
    with torch.no_grad(), mor_model._routing.activate(plan, record=False):
        q(x)
        x.add_(1.0)  # in place: k must not reuse what q left for the old values
        k.mor_roles["reasoner"].up.normal_(0.0, 0.3)
        k.mor_roles["reasoner"].down.normal_(0.0, 0.3)
        fused = k(x)
        expected = dense_forward(k, x, plan.role_ids.view(1, 4))
    assert (fused - expected).abs().max().item() < 1e-4
