"""The no-role-split ablation (`role_split: false`): one LoRA group serves every role's tokens, and it computes
exactly what a MoR model with one role would, whatever the tokens' role ids."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from mor.model import (
    SHARED_GROUP,
    MoRConfig,
    MoRConfigError,
    MoRLoadError,
    RoleConfig,
    apply_mor,
    count_parameters,
    load_agent_adapters,
    load_groups,
    load_mor,
    load_role,
    save_mor,
)

from .conftest import VOCAB, build_base, perturb_adapters

GROUP = RoleConfig(routed=3, top_k=2, shared=True)
ROLES = {"reasoner": GROUP, "executor": GROUP, "summarizer": GROUP}


def _inputs() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    input_ids = torch.randint(3, VOCAB, (2, 9), generator=generator)
    role_ids = torch.tensor([[0, 0, 0, 1, 1, 1, 2, 2, 2], [2, 2, 0, 2, 0, 1, 1, 2, 0]])
    return input_ids, role_ids


def _one_group_model() -> torch.nn.Module:
    model = apply_mor(build_base(), MoRConfig(rank=4, roles=ROLES, role_split=False))
    perturb_adapters(model)
    return model


def test_the_config_has_one_group_and_needs_equal_roles() -> None:
    config = MoRConfig(rank=4, roles=ROLES, role_split=False)
    assert config.group_names == [SHARED_GROUP] and config.role_names == list(ROLES)
    assert config.group_of("summarizer") == SHARED_GROUP and config.group_of(0) == SHARED_GROUP
    assert MoRConfig().group_names == ["reasoner", "executor", "summarizer"]
    with pytest.raises(MoRConfigError, match="role_split: false gives every role the same LoRA group") as error:
        MoRConfig(role_split=False)  # the paper's summarizer has fewer experts
    assert "summarizer: routed 3, top_k 2" in str(error.value) and "e.g. give each role {routed: 4" in str(error.value)


@pytest.mark.parametrize("impl", ["grouped", "fused", "dense"])
def test_one_group_computes_what_a_single_role_model_computes(impl: str) -> None:
    """Every token, whatever its role, goes through the same group: the outputs, the load-balancing loss over all
    tokens and the orthogonality loss equal those of a MoR model with one role holding the same weights, in every
    implementation of the layer (fused is the GPU path)."""
    split_off = _one_group_model()
    single = apply_mor(build_base(), MoRConfig(rank=4, roles={SHARED_GROUP: GROUP}))
    single.load_state_dict(split_off.state_dict())
    split_off.set_impl(impl)
    single.set_impl(impl)
    input_ids, role_ids = _inputs()
    split_off.train()
    single.train()
    out = split_off(input_ids=input_ids, role_ids=role_ids).logits
    aux = split_off.aux_loss()
    expected = single(input_ids=input_ids, role_ids=torch.zeros_like(role_ids)).logits
    assert torch.allclose(out, expected, atol=1e-6)
    assert torch.allclose(aux, single.aux_loss(), atol=1e-6) and float(aux.detach()) > 0
    assert torch.allclose(split_off.orth_loss(), single.orth_loss())
    assert list(split_off.router_stats()) == [SHARED_GROUP]
    with torch.no_grad():
        other_roles = split_off(input_ids=input_ids, role_ids=(role_ids + 1) % 3).logits
    assert torch.allclose(other_roles, out, atol=1e-6), "role ids choose nothing"
    generated = split_off.generate(input_ids=input_ids[:1], role="executor", max_new_tokens=2, do_sample=False)
    assert generated.shape == (1, 11)


def test_its_parameters_are_one_groups() -> None:
    split_off = count_parameters(MoRConfig(rank=4, roles=ROLES, role_split=False), build_base())
    one_role = count_parameters(MoRConfig(rank=4, roles={"executor": GROUP}), build_base())
    assert split_off.trainable == one_role.trainable and split_off.per_role == {SHARED_GROUP: one_role.trainable}
    assert count_parameters(_one_group_model()).trainable == split_off.trainable


def test_saved_as_one_group_and_loaded_whole_per_role_or_as_an_agent(tmp_path: Path) -> None:
    model = _one_group_model()
    save_mor(model, tmp_path)
    manifest = json.loads((tmp_path / "mor_config.json").read_text())
    assert manifest["roles"] == [SHARED_GROUP] and manifest["config"]["role_split"] is False
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mor_config.json", "role-all.safetensors"]
    input_ids, role_ids = _inputs()
    with torch.no_grad():
        expected = model(input_ids=input_ids, role_ids=role_ids).logits
        for loaded in (load_mor(build_base(), tmp_path), load_agent_adapters(build_base(), {SHARED_GROUP: tmp_path})):
            assert torch.equal(loaded(input_ids=input_ids, role_ids=role_ids).logits, expected)
        fresh = apply_mor(build_base(), MoRConfig(rank=4, roles=ROLES, role_split=False))
        load_role(fresh, tmp_path, "executor")  # the executor's group is the one group
        assert torch.equal(fresh(input_ids=input_ids, role_ids=role_ids).logits, expected)
        assert load_groups(apply_mor(build_base(), MoRConfig(rank=4, roles=ROLES, role_split=False)), tmp_path) == [
            SHARED_GROUP
        ]
    with pytest.raises(MoRLoadError, match=r"holds roles \['all'\], not 'executor'"):
        load_role(apply_mor(build_base(), MoRConfig(rank=4, roles=ROLES)), tmp_path, "executor")
    with pytest.raises(MoRLoadError, match="holds groups \\['all'\\], the model has \\['reasoner'"):
        load_groups(apply_mor(build_base(), MoRConfig(rank=4, roles=ROLES)), tmp_path)


def test_an_agent_missing_a_roles_directory_is_refused(tmp_path: Path) -> None:
    model = apply_mor(build_base(), MoRConfig(rank=4))
    directories = {role: save_mor(model, tmp_path / role, roles=[role]) for role in ("reasoner", "executor")}
    with pytest.raises(MoRLoadError, match=r"adapters: roles \['summarizer'\] of the adapter config have no"):
        load_agent_adapters(build_base(), directories)
