"""The unified trajectory format: every data source produces it, rendering, training and the agent consume it."""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = [
    "CONTEXT_ROLES",
    "DEFAULT_ROLES",
    "Tool",
    "ToolCall",
    "Turn",
    "TrajectoryMeta",
    "Trajectory",
]

CONTEXT_ROLES: tuple[str, ...] = ("system", "user", "observation")
"""Turn roles the model only reads; every other turn role names an agent role (reasoner, executor, ...)."""

DEFAULT_ROLES: tuple[str, ...] = ("reasoner", "executor", "summarizer")
"""The paper's three roles, in role-id order."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Tool(_Strict):
    """An OpenAI-style function: name, description and JSON-schema parameters."""

    name: str = Field(min_length=1, description="Function name the executor calls.")
    description: str = Field(default="", description="What the function does.")
    parameters: dict[str, Any] = Field(
        default_factory=lambda: {"type": "object", "properties": {}},
        description="JSON schema of the arguments object.",
    )

    @property
    def properties(self) -> dict[str, dict[str, Any]]:
        """The schema of each argument, in declaration order."""
        return dict(self.parameters.get("properties") or {})

    @property
    def required(self) -> list[str]:
        """Names of the required arguments."""
        return list(self.parameters.get("required") or [])

    def to_openai(self) -> dict[str, Any]:
        """This tool as an entry of the OpenAI `tools` list."""
        return {
            "type": "function",
            "function": {"name": self.name, "description": self.description, "parameters": self.parameters},
        }

    @classmethod
    def from_openai(cls, entry: dict[str, Any]) -> Tool:
        """Read an OpenAI `tools` entry (`{"type": "function", "function": {...}}`) or a bare function object."""
        function = entry.get("function", entry) if entry.get("type", "function") == "function" else None
        if not isinstance(function, dict) or "name" not in function:
            raise ValueError(
                f"tools entry {entry!r}: expected {{'type': 'function', 'function': {{'name': ..., "
                "'parameters': {...}}}}"
            )
        return cls(
            name=function["name"],
            description=function.get("description") or "",
            parameters=function.get("parameters") or {"type": "object", "properties": {}},
        )


class ToolCall(_Strict):
    """One function call: name and arguments (plus the call id of the OpenAI protocol, when there is one)."""

    name: str = Field(description="Called function.")
    arguments: dict[str, Any] = Field(default_factory=dict, description="Arguments object.")
    id: str | None = Field(default=None, description="Call id linking the call to its observation.")

    def key(self) -> tuple[str, str]:
        """A hashable identity of the call: name and canonical JSON arguments (ids ignored)."""
        return self.name, json.dumps(self.arguments, sort_keys=True, ensure_ascii=False)


class Turn(_Strict):
    """One step of a trajectory.

    Context turns (`system`, `user`, `observation`) carry `content`. Agent-role turns carry what their role
    produces: a deciding role (the reasoner) `thought` + `next_role`; an acting role (the executor) `calls`; an
    answering role (the summarizer) `content`.
    """

    role: str = Field(min_length=1, description="system | user | observation | an agent role name.")
    content: str | None = Field(default=None, description="Text of context turns and of answers.")
    thought: str | None = Field(default=None, description="The reasoner's thought.")
    next_role: str | None = Field(default=None, description="The role the reasoner hands over to.")
    calls: list[ToolCall] = Field(default_factory=list, description="The executor's function calls.")
    call_id: str | None = Field(default=None, description="For observations: the call answered.")

    @model_validator(mode="after")
    def _one_payload(self) -> Turn:
        kinds = [
            name
            for name, present in (
                ("content", self.content is not None),
                ("thought/next_role", self.thought is not None or self.next_role is not None),
                ("calls", bool(self.calls)),
            )
            if present
        ]
        if len(kinds) > 1:
            raise ValueError(
                f"turn of role {self.role!r} has {' and '.join(kinds)}; a turn carries one payload: content, "
                "or thought + next_role, or calls (split it into two turns)"
            )
        if self.thought is not None and self.next_role is None:
            raise ValueError(f"turn of role {self.role!r} has a thought but no next_role; add next_role")
        if self.role in CONTEXT_ROLES and (self.calls or self.next_role is not None):
            raise ValueError(f"context turn {self.role!r} cannot carry calls or next_role; use content")
        return self

    @property
    def is_context(self) -> bool:
        """Whether the model only reads this turn (system, user, observation)."""
        return self.role in CONTEXT_ROLES


class TrajectoryMeta(BaseModel):
    """Where a trajectory comes from and how to check it; sources may add their own keys."""

    model_config = ConfigDict(extra="allow")

    source: str = Field(default="unknown", description="Data source name, e.g. synthetic, toolbench.")
    split: str | None = Field(default=None, description="train | test, when the source splits.")
    category: str | None = Field(default=None, description="Kind of task, e.g. single, multi, no_tool.")
    answer_contains: list[str] = Field(default_factory=list, description="Strings a correct final answer must contain.")


class Trajectory(_Strict):
    """Candidate tools and the turns of one episode."""

    id: str = Field(description="Stable identifier.")
    tools: list[Tool] = Field(default_factory=list, description="Candidate functions offered to the agent.")
    turns: list[Turn] = Field(description="The episode, in order.")
    metadata: TrajectoryMeta = Field(default_factory=TrajectoryMeta, description="Source, split and checks.")

    @property
    def calls(self) -> list[ToolCall]:
        """Every function call of the episode, in order."""
        return [call for turn in self.turns for call in turn.calls]

    @property
    def answer(self) -> str | None:
        """The final answer: content of the last agent-role turn that has content."""
        for turn in reversed(self.turns):
            if not turn.is_context and turn.content is not None:
                return turn.content
        return None

    @property
    def query(self) -> str | None:
        """The first user message."""
        return next((turn.content for turn in self.turns if turn.role == "user"), None)

    def tool(self, name: str) -> Tool | None:
        """The candidate tool of that name, if offered."""
        return next((tool for tool in self.tools if tool.name == name), None)
