"""The MoR adapter configuration: rank, scaling, target modules and the ordered role groups."""

from __future__ import annotations

import re
from types import MappingProxyType
from typing import Any, Mapping

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

__all__ = [
    "DEFAULT_TARGET_MODULES",
    "FUSED_MODULES",
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

_PREFIX = "MoR config: "
_ROLE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_MODULE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class MoRConfigError(ValueError):
    """A MoR configuration or model does not fit; the message names each field, its value, the rule and a fix."""


class RoleConfig(BaseModel):
    """One role's LoRA group: an optional shared LoRA plus `routed` LoRAs of which a router picks `top_k` per token.

    Values are checked together with the rest of the configuration when a `MoRConfig` is built.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    routed: int = Field(4, description="Number of routed LoRA experts in this role's group (0 for none).")
    top_k: int = Field(3, description="Routed experts each token uses (1..routed); ignored when routed is 0.")
    shared: bool = Field(True, description="Whether the group has a shared LoRA, gated per token by a sigmoid.")

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


class MoRConfig(BaseModel):
    """Mixture-of-Roles adapter settings; the defaults are the MoRAgent paper's.

    `roles` is ordered: role id `i` in `role_ids` means `role_names[i]`.
    Building an invalid configuration raises `MoRConfigError` listing every problem at once.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    rank: int = Field(16, description="LoRA rank r of every shared and routed LoRA.")
    alpha: float = Field(32.0, description="LoRA scaling numerator: each LoRA's output is scaled by alpha / rank.")
    dropout: float = Field(0.0, description="Dropout on the LoRA input (0 <= dropout < 1); routers see the clean input.")
    target_modules: list[str] = Field(
        default_factory=lambda: list(DEFAULT_TARGET_MODULES),
        description=(
            "Linear layers to adapt, by their last name component. The logical names q_proj, k_proj, v_proj, "
            "gate_proj, up_proj map onto fused qkv_proj / gate_up_proj where the architecture fuses them."
        ),
    )
    roles: dict[str, RoleConfig] = Field(
        default_factory=_paper_roles,
        description="Ordered mapping role name -> role group; the order defines the role ids.",
    )

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as error:
            raise MoRConfigError(_format_validation_error(error)) from None

    @classmethod
    def model_validate(cls, obj: Any, **kwargs: Any) -> MoRConfig:  # type: ignore[override]
        """Build a configuration from a mapping; raises `MoRConfigError` naming every bad field."""
        try:
            return super().model_validate(obj, **kwargs)
        except ValidationError as error:
            raise MoRConfigError(_format_validation_error(error)) from None

    @classmethod
    def model_validate_json(cls, json_data: str | bytes | bytearray, **kwargs: Any) -> MoRConfig:  # type: ignore[override]
        """Build a configuration from JSON text; raises `MoRConfigError` naming every bad field."""
        try:
            return super().model_validate_json(json_data, **kwargs)
        except ValidationError as error:
            raise MoRConfigError(_format_validation_error(error)) from None

    @model_validator(mode="after")
    def _check(self) -> MoRConfig:
        problems = _config_problems(self)
        if problems:
            raise MoRConfigError("; ".join(problems))
        return self

    @property
    def role_names(self) -> list[str]:
        """Role names in role-id order."""
        return list(self.roles)

    @property
    def scaling(self) -> float:
        """Factor alpha / rank applied to every LoRA's output."""
        return self.alpha / self.rank

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


def _config_problems(config: MoRConfig) -> list[str]:
    problems: list[str] = []
    if config.rank <= 0:
        problems.append(f"rank: got {config.rank}, must be > 0; e.g. rank: 16")
    if config.alpha <= 0:
        problems.append(f"alpha: got {config.alpha}, must be > 0; e.g. alpha: {2 * max(config.rank, 1)}")
    if not 0.0 <= config.dropout < 1.0:
        problems.append(f"dropout: got {config.dropout}, must be in [0, 1); e.g. dropout: 0.0")
    if not config.target_modules:
        problems.append(f"target_modules: got [], must name at least one linear layer; e.g. {list(DEFAULT_TARGET_MODULES)}")
    for name in config.target_modules:
        if not _MODULE_NAME.match(name):
            problems.append(
                f"target_modules: got {name!r}, must be a module name (letters, digits, underscores), "
                f"e.g. 'q_proj'"
            )
    if len(set(config.target_modules)) != len(config.target_modules):
        duplicates = sorted({n for n in config.target_modules if config.target_modules.count(n) > 1})
        problems.append(f"target_modules: {duplicates} listed more than once; list each module once")
    if not config.roles:
        problems.append(
            "roles: got {}, must define at least one role; e.g. "
            "roles: {executor: {routed: 4, top_k: 3, shared: true}}"
        )
    for role_name, role in config.roles.items():
        where = f"roles.{role_name}"
        if not _ROLE_NAME.match(role_name):
            problems.append(
                f"{where}: role name {role_name!r} must start with a letter or underscore and contain only "
                f"letters, digits and underscores; e.g. 'executor'"
            )
        if role.routed < 0:
            problems.append(f"{where}.routed: got {role.routed}, must be >= 0; e.g. routed: 4")
        elif role.routed == 0:
            if not role.shared:
                problems.append(
                    f"{where}: routed is 0 and shared is false, so the role has no LoRA; "
                    f"set shared: true or routed >= 1"
                )
        elif not 1 <= role.top_k <= role.routed:
            problems.append(
                f"{where}.top_k: got {role.top_k}, must be between 1 and routed ({role.routed}); "
                f"e.g. top_k: {max(1, role.routed - 1)}"
            )
    return problems


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
