"""The MoR adapter configuration: rank, scaling, target modules and the ordered role groups.

This is the one definition of these settings and of their checks: the `mor` section of a job spec
(`mor.spec.MoRSpec`) is a `MoRConfig` plus the loss weights.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

__all__ = [
    "DEFAULT_ROLE_NAMES",
    "DEFAULT_TARGET_MODULES",
    "FUSED_MODULES",
    "SHARED_GROUP",
    "LoRAConfig",
    "MoRConfig",
    "MoRConfigError",
    "RoleConfig",
]

#: The seven linear layers of a Llama-style decoder block, by their logical names.
DEFAULT_TARGET_MODULES: tuple[str, ...] = (
    "q_proj",
    "k_proj",
    "v_proj",
    "o_proj",
    "gate_proj",
    "up_proj",
    "down_proj",
)

#: Fused projections some architectures use (Phi-3) and the logical layers each one computes.
FUSED_MODULES: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "qkv_proj": ("q_proj", "k_proj", "v_proj"),
        "gate_up_proj": ("gate_proj", "up_proj"),
    }
)

#: The paper's roles, in role-id order.
DEFAULT_ROLE_NAMES: tuple[str, ...] = ("reasoner", "executor", "summarizer")

#: The name of the one LoRA group of a configuration with `role_split: false` (every role's tokens use it).
SHARED_GROUP = "all"

#: Largest LoRA rank and largest number of routed experts per role accepted (guards against typos like rank: 1600).
_MAX_RANK = 1024
_MAX_ROUTED = 64

_PREFIX = "MoR config: "
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class MoRConfigError(ValueError):
    """A MoR configuration or model does not fit; the message names each field, its value, the rule and a fix."""


class _CheckedModel(BaseModel):
    """A frozen model whose construction raises `MoRConfigError` naming every bad field."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    def __init__(self, **data: Any) -> None:
        """Check the values; raises `MoRConfigError` naming every bad field."""
        try:
            super().__init__(**data)
        except ValidationError as error:
            raise MoRConfigError(_format_validation_error(error)) from None

    # Marked as pydantic's own __init__ (as pydantic's RootModel does) so that, nested in another model such as a
    # job spec, validation does not call it and keeps one error per field with its full path (mor.roles.x.top_k).
    __init__.__pydantic_base_init__ = True  # type: ignore[attr-defined]


class RoleConfig(_CheckedModel):
    """One role's LoRA group: an optional shared LoRA plus `routed` LoRAs of which a router picks `top_k` per token."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    routed: int = Field(4, description=f"Number of routed LoRA experts in this role's group (0..{_MAX_ROUTED}).")
    top_k: int = Field(3, description="Routed experts each token uses (1..routed); ignored when routed is 0.")
    shared: bool = Field(True, description="Whether the group has a shared LoRA, gated per token by a sigmoid.")

    @field_validator("routed")
    @classmethod
    def _routed_in_range(cls, value: int) -> int:
        if value < 0:
            raise ValueError(f"got {value}, must be ≥ 0; e.g. routed: 4")
        if value > _MAX_ROUTED:
            raise ValueError(f"got {value}, must be ≤ {_MAX_ROUTED}; e.g. routed: 4")
        return value

    @field_validator("top_k")
    @classmethod
    def _top_k_within_routed(cls, value: int, info: ValidationInfo) -> int:
        routed = info.data.get("routed")
        if not routed:  # no routed experts (top_k is ignored), or routed itself is invalid
            return value
        if value > routed:
            raise ValueError(f"got {value}, must be ≤ routed ({routed}); e.g. top_k: {max(1, routed - 1)}")
        if value < 1:
            raise ValueError(f"got {value}, must be ≥ 1 as routed is {routed}; e.g. top_k: {max(1, routed - 1)}")
        return value

    @model_validator(mode="after")
    def _has_a_lora(self) -> RoleConfig:
        if self.routed == 0 and not self.shared:
            raise ValueError("routed is 0 and shared is false, so the role has no LoRA; set shared: true or routed ≥ 1")
        return self

    @property
    def num_loras(self) -> int:
        """LoRAs in the group (shared + routed)."""
        return self.routed + int(self.shared)


def _paper_roles() -> dict[str, RoleConfig]:
    return {
        "reasoner": RoleConfig(routed=4, top_k=3, shared=True),
        "executor": RoleConfig(routed=4, top_k=3, shared=True),
        "summarizer": RoleConfig(routed=3, top_k=2, shared=True),
    }


class _LoRAFields(_CheckedModel):
    """The settings every LoRA of an adapter shares (MoR's and a plain LoRA's alike), and their checks."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    rank: int = Field(
        16,
        description=f"LoRA rank r of every shared and routed LoRA (adapter: lora: of the one LoRA) (1..{_MAX_RANK}).",
    )
    alpha: float = Field(32.0, description="LoRA scaling numerator: each LoRA's output is scaled by alpha / rank.")
    dropout: float = Field(0.0, description="Dropout on the LoRA input (0 ≤ dropout < 1); routers see the clean input.")
    target_modules: list[str] = Field(
        default_factory=lambda: list(DEFAULT_TARGET_MODULES),
        description=(
            "Linear layers to adapt, by their last name component. The logical names q_proj, k_proj, v_proj, "
            "gate_proj, up_proj map onto fused qkv_proj / gate_up_proj where the architecture fuses them."
        ),
    )

    @classmethod
    def model_validate(cls, obj: Any, **kwargs: Any) -> Self:  # type: ignore[override]
        """Build a configuration from a mapping; raises `MoRConfigError` naming every bad field."""
        try:
            return super().model_validate(obj, **kwargs)
        except ValidationError as error:
            raise MoRConfigError(_format_validation_error(error)) from None

    @classmethod
    def model_validate_json(cls, json_data: str | bytes | bytearray, **kwargs: Any) -> Self:  # type: ignore[override]
        """Build a configuration from JSON text; raises `MoRConfigError` naming every bad field."""
        try:
            return super().model_validate_json(json_data, **kwargs)
        except ValidationError as error:
            raise MoRConfigError(_format_validation_error(error)) from None

    @field_validator("rank")
    @classmethod
    def _rank_in_range(cls, value: int) -> int:
        if value <= 0:
            raise ValueError(f"got {value}, must be > 0; e.g. rank: 16")
        if value > _MAX_RANK:
            raise ValueError(f"got {value}, must be ≤ {_MAX_RANK}; e.g. rank: 16")
        return value

    @field_validator("alpha")
    @classmethod
    def _alpha_positive(cls, value: float, info: ValidationInfo) -> float:
        if value <= 0:
            raise ValueError(f"got {value}, must be > 0; e.g. alpha: {2 * info.data.get('rank', 16)}")
        return value

    @field_validator("dropout")
    @classmethod
    def _dropout_in_range(cls, value: float) -> float:
        if not 0.0 <= value < 1.0:
            raise ValueError(f"got {value}, must be in [0, 1); e.g. dropout: 0.0")
        return value

    @field_validator("target_modules")
    @classmethod
    def _module_names(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError(f"got [], must name at least one linear layer; e.g. {list(DEFAULT_TARGET_MODULES)}")
        problems = []
        bad = [name for name in value if not _IDENTIFIER.match(name)]
        if bad:
            problems.append(
                f"got {', '.join(map(repr, bad))}, must be a module name (letters, digits, underscores), e.g. 'q_proj'"
            )
        duplicates = sorted({name for name in value if value.count(name) > 1})
        if duplicates:
            problems.append(f"{duplicates} listed more than once; list each module once")
        if problems:
            raise ValueError("; ".join(problems))
        return value

    @property
    def scaling(self) -> float:
        """Factor alpha / rank applied to every LoRA's output."""
        return self.alpha / self.rank

    @property
    def role_names(self) -> list[str]:
        """Role names in role-id order."""
        raise NotImplementedError

    def role_id(self, role: str | int) -> int:
        """The integer id of a role given by name (or an id, which is checked)."""
        names = self.role_names
        if isinstance(role, bool) or not isinstance(role, (str, int)):
            raise MoRConfigError(f"role: got {role!r}, must be one of {names} or an id in 0..{len(names) - 1}")
        if isinstance(role, int):
            if 0 <= role < len(names):
                return role
            raise MoRConfigError(f"role: got id {role}, must be in 0..{len(names) - 1} (roles {names})")
        try:
            return names.index(role)
        except ValueError:
            raise MoRConfigError(f"role: got {role!r}, must be one of {names}") from None


class LoRAConfig(_LoRAFields):
    """A plain LoRA (PEFT's) on the target modules, serving the tokens of every role: the baseline MoR is compared
    with. `roles` only names the agent's roles (their prompts and ids); the adapter ignores role ids."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    roles: list[str] = Field(
        default_factory=lambda: list(DEFAULT_ROLE_NAMES),
        description="The agent's role names in role-id order (one LoRA serves them all).",
    )

    @field_validator("roles")
    @classmethod
    def _role_list(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError(f"got [], must name at least one role; e.g. roles: {list(DEFAULT_ROLE_NAMES)}")
        bad = [name for name in value if not _IDENTIFIER.match(name)]
        if bad:
            raise ValueError(f"got role name {', '.join(map(repr, bad))}; use letters, digits and underscores")
        duplicates = sorted({name for name in value if value.count(name) > 1})
        if duplicates:
            raise ValueError(f"{duplicates} listed more than once; list each role once")
        return value

    @property
    def role_names(self) -> list[str]:
        """Role names in role-id order."""
        return list(self.roles)


class MoRConfig(_LoRAFields):
    """Mixture-of-Roles adapter settings; the defaults are the MoRAgent paper's.

    `roles` is ordered: role id `i` in `role_ids` means `role_names[i]`. Each role has its own LoRA group unless
    `role_split` is false (the no-role-split ablation: one group, named `SHARED_GROUP`, serves every role's tokens).
    Building an invalid configuration raises `MoRConfigError` listing every problem at once.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    roles: dict[str, RoleConfig] = Field(
        default_factory=_paper_roles,
        description=(
            "Ordered mapping role name -> role group; the order defines the role ids. "
            "Default: the paper's reasoner, executor and summarizer. Ablations: routed: 0 and shared: true in "
            "every role is MoR without routing (one shared LoRA per role)."
        ),
    )
    role_split: bool = Field(
        True,
        description=(
            "One LoRA group per role (the paper). false: the no-role-split ablation, one group (routed top-k, "
            "shared LoRA) for the tokens of every role; every role must then have the same routed, top_k and shared."
        ),
    )

    @field_validator("roles")
    @classmethod
    def _role_names(cls, value: dict[str, RoleConfig]) -> dict[str, RoleConfig]:
        if not value:
            raise ValueError(
                "got {}, must define at least one role; e.g. roles: {executor: {routed: 4, top_k: 3, shared: true}}"
            )
        bad = [name for name in value if not _IDENTIFIER.match(name)]
        if bad:
            raise ValueError(
                f"got role name {', '.join(map(repr, bad))}; a role name starts with a letter or underscore and has "
                "only letters, digits and underscores; e.g. executor"
            )
        return value

    @model_validator(mode="after")
    def _one_group_needs_equal_roles(self) -> MoRConfig:
        if not self.role_split and len(set(self.roles.values())) > 1:
            shown = "; ".join(
                f"{name}: routed {role.routed}, top_k {role.top_k}, shared {role.shared}"
                for name, role in self.roles.items()
            )
            first = next(iter(self.roles.values()))
            example = f"{{routed: {first.routed}, top_k: {first.top_k}, shared: {str(first.shared).lower()}}}"
            raise ValueError(
                f"role_split: false gives every role the same LoRA group, so the roles must agree; got {shown}; "
                f"e.g. give each role {example}"
            )
        return self

    @property
    def role_names(self) -> list[str]:
        """Role names in role-id order."""
        return list(self.roles)

    @property
    def groups(self) -> dict[str, RoleConfig]:
        """The LoRA groups the layers hold, in group-id order: one per role, or `SHARED_GROUP` alone without
        role split."""
        if self.role_split:
            return dict(self.roles)
        return {SHARED_GROUP: next(iter(self.roles.values()))}

    @property
    def group_names(self) -> list[str]:
        """Names of the LoRA groups (the role names, or `[SHARED_GROUP]` without role split)."""
        return list(self.groups)

    def group_of(self, role: str | int) -> str:
        """The name of the LoRA group that serves `role` (a name or id)."""
        role_id = self.role_id(role)
        return self.role_names[role_id] if self.role_split else SHARED_GROUP


def _format_validation_error(error: ValidationError) -> str:
    lines = []
    for item in error.errors():
        location = ".".join(str(part) for part in item["loc"])
        message = item["msg"].removeprefix("Value error, ").removeprefix(_PREFIX)
        if item["type"] == "value_error" and not location:
            lines.append(message)
        elif "input" in item and item["type"] != "value_error":
            lines.append(f"{location}: got {item['input']!r}: {message}")
        else:
            lines.append(f"{location}: {message}")
    return _PREFIX + "; ".join(lines)
