"""OpenAI chat messages ↔ trajectory turns, for the single-step API (and the server that uses it)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from mor.data.schema import Tool, ToolCall, Trajectory, TrajectoryMeta, Turn

__all__ = ["messages_to_trajectory", "tool_calls_message"]


def _text(content: Any) -> str | None:
    """Message content as text (string content, or the text parts of a content list)."""
    if content is None or isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(part.get("text", "") for part in content if isinstance(part, Mapping))
    return str(content)


def _call(entry: Mapping[str, Any], where: str) -> ToolCall:
    function = entry.get("function") or {}
    name = function.get("name")
    if not name:
        raise ValueError(f"{where}: tool call without function.name; expected {{'function': {{'name': ...}}}}")
    raw = function.get("arguments") or "{}"
    try:
        arguments = json.loads(raw) if isinstance(raw, str) else dict(raw)
    except (json.JSONDecodeError, TypeError, ValueError):
        raise ValueError(f"{where}: arguments of {name} are not a JSON object: {str(raw)[:120]!r}") from None
    if not isinstance(arguments, dict):
        raise ValueError(f"{where}: arguments of {name} must be a JSON object, got {type(arguments).__name__}")
    return ToolCall(name=name, arguments=arguments, id=entry.get("id"))


def messages_to_trajectory(
    messages: Sequence[Mapping[str, Any]],
    tools: Sequence[Tool | Mapping[str, Any]] = (),
    *,
    reasoner: str = "reasoner",
    executor: str = "executor",
    summarizer: str = "summarizer",
    trajectory_id: str = "chat",
) -> Trajectory:
    """The trajectory an OpenAI conversation stands for.

    An assistant message with `tool_calls` is a reasoner turn (its content is the thought) followed by an executor
    turn; a `tool` message is an observation; an assistant message with only content is a reasoner turn handing
    over to the summarizer, followed by the summarizer's answer.
    """
    turns: list[Turn] = []
    for index, message in enumerate(messages):
        where = f"messages[{index}]"
        role = message.get("role")
        content = _text(message.get("content"))
        if role in ("system", "developer"):
            turns.append(Turn(role="system", content=content or ""))
        elif role == "user":
            turns.append(Turn(role="user", content=content or ""))
        elif role == "tool":
            turns.append(Turn(role="observation", content=content or "", call_id=message.get("tool_call_id")))
        elif role == "assistant":
            calls = [
                _call(entry, f"{where}.tool_calls[{n}]") for n, entry in enumerate(message.get("tool_calls") or [])
            ]
            if calls:
                turns.append(Turn(role=reasoner, thought=content or None, next_role=executor))
                turns.append(Turn(role=executor, calls=calls))
            else:
                turns.append(Turn(role=reasoner, next_role=summarizer))
                turns.append(Turn(role=summarizer, content=content or ""))
        else:
            raise ValueError(f"{where}.role: got {role!r}, expected system, user, assistant or tool")
    offered = [tool if isinstance(tool, Tool) else Tool.from_openai(dict(tool)) for tool in tools]
    return Trajectory(id=trajectory_id, tools=offered, turns=turns, metadata=TrajectoryMeta(source="openai-messages"))


def tool_calls_message(thought: str | None, calls: Sequence[ToolCall], content: str | None = None) -> dict[str, Any]:
    """An OpenAI assistant message: the thought as content plus `tool_calls`, or the final answer as content."""
    message: dict[str, Any] = {"role": "assistant", "content": content if content is not None else thought}
    if calls:
        message["tool_calls"] = [
            {
                "id": call.id or f"call_{n + 1}",
                "type": "function",
                "function": {"name": call.name, "arguments": json.dumps(call.arguments, ensure_ascii=False)},
            }
            for n, call in enumerate(calls)
        ]
    return message
