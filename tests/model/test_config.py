"""MoRConfig: the paper defaults, roles as data, and construction errors that name the field and the fix."""

from __future__ import annotations

import pytest
from pydantic import BaseModel, ValidationError

from mor.model import DEFAULT_TARGET_MODULES, MoRConfig, MoRConfigError, RoleConfig


def test_defaults_are_the_paper_setting() -> None:
    config = MoRConfig()
    assert (config.rank, config.alpha, config.dropout, config.scaling) == (16, 32.0, 0.0, 2.0)
    assert (
        config.target_modules
        == list(DEFAULT_TARGET_MODULES)
        == ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    )
    assert config.roles == {
        "reasoner": RoleConfig(routed=4, top_k=3, shared=True),
        "executor": RoleConfig(routed=4, top_k=3, shared=True),
        "summarizer": RoleConfig(routed=3, top_k=2, shared=True),
    }
    assert config.role_names == ["reasoner", "executor", "summarizer"]
    assert [config.role_id(name) for name in config.role_names] == [0, 1, 2]
    assert config.role_id(2) == 2


def test_round_trip_through_dict_and_json_keeps_role_order() -> None:
    data = {"rank": 8, "roles": {"b": {"routed": 2, "top_k": 1}, "a": {"routed": 0, "top_k": 0}, "c": {}}}
    config = MoRConfig.model_validate(data)
    assert config.role_names == ["b", "a", "c"]
    assert MoRConfig.model_validate(config.model_dump()) == config
    assert MoRConfig.model_validate_json(config.model_dump_json()) == config
    five = MoRConfig(roles={f"role{i}": RoleConfig(routed=i, top_k=max(i, 1) if i else 0) for i in range(5)})
    assert five.role_id("role4") == 4 and five.roles["role0"].num_loras == 1


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"rank": 0}, r"rank: got 0, must be > 0; e.g. rank: 16"),
        ({"rank": -3}, r"rank: got -3, must be > 0"),
        ({"roles": {}}, r"roles: got \{\}, must define at least one role"),
        (
            {"roles": {"executor": {"routed": 4, "top_k": 6}}},
            r"roles.executor.top_k: got 6, must be ≤ routed \(4\); e.g. top_k: 3",
        ),
        ({"roles": {"executor": {"routed": 4, "top_k": 0}}}, r"roles.executor.top_k: got 0, must be ≥ 1"),
        ({"roles": {"executor": {"routed": -1}}}, r"roles.executor.routed: got -1, must be ≥ 0"),
        ({"roles": {"executor": {"routed": 0, "shared": False}}}, r"roles.executor: routed is 0 and shared is false"),
        ({"roles": {"bad name": {}}}, r"roles: got role name 'bad name'; a role name starts with a letter"),
        ({"rank": 2048}, r"rank: got 2048, must be ≤ 1024; e.g. rank: 16"),
        ({"roles": {"executor": {"routed": 65, "top_k": 3}}}, r"roles.executor.routed: got 65, must be ≤ 64"),
        ({"dropout": 1.0}, r"dropout: got 1.0, must be in \[0, 1\)"),
        ({"alpha": 0}, r"alpha: got 0.0, must be > 0"),
        ({"target_modules": []}, r"target_modules: got \[\], must name at least one linear layer"),
        ({"target_modules": ["q_proj", "q_proj"]}, r"target_modules: \['q_proj'\] listed more than once"),
        ({"target_modules": ["model.q proj"]}, r"target_modules: got 'model.q proj', must be a module name"),
        ({"rank": "big"}, r"rank: got 'big': Input should be a valid integer"),
        ({"lerning_rate": 1}, r"lerning_rate: got 1: Extra inputs are not permitted"),
        ({"roles": {"executor": {"topk": 2}}}, r"roles.executor.topk: got 2: Extra inputs are not permitted"),
    ],
)
def test_bad_config_fails_at_construction_naming_the_field(data: dict, message: str) -> None:
    with pytest.raises(MoRConfigError, match=message):
        MoRConfig.model_validate(data)
    with pytest.raises(MoRConfigError, match=message):
        MoRConfig(**data)


def test_all_problems_are_reported_at_once() -> None:
    with pytest.raises(MoRConfigError) as error:
        MoRConfig(rank=0, roles={"a": {"routed": 2, "top_k": 3}, "b": {"routed": 0, "shared": False}})
    message = str(error.value)
    assert message.startswith("MoR config: ")
    for field in ("rank:", "roles.a.top_k:", "roles.b:"):
        assert field in message


def test_a_role_config_checks_itself() -> None:
    with pytest.raises(MoRConfigError, match=r"^MoR config: top_k: got 3, must be ≤ routed \(2\); e.g. top_k: 1$"):
        RoleConfig(routed=2, top_k=3)
    with pytest.raises(MoRConfigError, match="routed is 0 and shared is false"):
        RoleConfig(routed=0, shared=False)
    assert RoleConfig(routed=0, top_k=0).num_loras == 1


def test_nested_in_another_model_each_error_keeps_its_field_path() -> None:
    class Spec(BaseModel):
        mor: MoRConfig

    with pytest.raises(ValidationError) as error:
        Spec.model_validate({"mor": {"rank": 0, "roles": {"executor": {"routed": 4, "top_k": 6}}}})
    assert [(item["loc"], item["msg"]) for item in error.value.errors()] == [
        (("mor", "rank"), "Value error, got 0, must be > 0; e.g. rank: 16"),
        (("mor", "roles", "executor", "top_k"), "Value error, got 6, must be ≤ routed (4); e.g. top_k: 3"),
    ]
    assert Spec.model_validate({"mor": {"rank": 4}}).mor.rank == 4


def test_role_id_rejects_unknown_roles() -> None:
    config = MoRConfig()
    with pytest.raises(
        MoRConfigError, match=r"role: got 'critic', must be one of \['reasoner', 'executor', 'summarizer'\]"
    ):
        config.role_id("critic")
    with pytest.raises(MoRConfigError, match=r"role: got id 3, must be in 0..2"):
        config.role_id(3)
