"""The model under test, seen by every benchmark: one assistant turn of an OpenAI-style tool conversation.

A benchmark never cares whether it talks to the role-gated MoR agent in-process, to our served agent, or to a
third-party OpenAI-compatible server: it calls `ChatTarget.respond(messages, tools)` and gets tool calls or a
final answer back, plus, for MoR agents, which role failed when a turn was unusable.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

__all__ = ["ChatTarget", "TargetCall", "TargetReply"]


@dataclass(frozen=True)
class TargetCall:
    """One function call the model made: a name and decoded JSON arguments (raw text kept when undecodable)."""

    name: str
    arguments: dict[str, Any]
    raw_arguments: str | None = None
    id: str | None = None


@dataclass
class TargetReply:
    """One assistant turn: tool calls, or a final answer (`content`), or a failure the model itself caused.

    `failing_role` names the MoR role whose output was unusable (None for non-MoR targets or success);
    `thought` is the reasoner's thought when the target exposes it; `raw` is the raw text for scoring checkers
    that parse outputs themselves.
    """

    calls: list[TargetCall] = field(default_factory=list)
    content: str | None = None
    thought: str | None = None
    failing_role: str | None = None
    failure: str | None = None
    raw: str | None = None
    latency_s: float = 0.0
    usage: dict[str, int] = field(default_factory=dict)


@runtime_checkable
class ChatTarget(Protocol):
    """A model under test."""

    name: str

    def respond(
        self,
        messages: Sequence[Mapping[str, Any]],
        tools: Sequence[Mapping[str, Any]],
        *,
        tool_choice: str = "auto",
    ) -> TargetReply:
        """The next assistant turn after `messages`, offered OpenAI-style function `tools`."""
