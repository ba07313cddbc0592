"""Readers of chat-message formats, and the mapping of chat messages onto trajectories that every chat dialect
shares.

* `read_openai_messages`: `{"messages": [...OpenAI chat messages...], "tools": [...OpenAI tools...]}` records, as
  users export them from their logs (assistant `tool_calls`, `tool` messages with `tool_call_id`; the legacy
  `function_call` / `function` messages too; an assistant's `reasoning_content` or `reasoning` is its thought).
* `read_typed_messages`: LLaMA-Factory's typed-content messages (its v1 data format): `{"messages": [{"role":
  "system" | "user" | "assistant" | "tool", "content": [{"type": "text" | "reasoning" | "tool_call", "value":
  ...}]}], "tools": "<JSON list of functions>"}`; a `tool_call` part's value is `{"name", "arguments"}` as JSON.

The other chat dialects (`glaive`, `sharegpt`) turn a record into `ChatMessage`s and call `chat_trajectory`, which
maps them as the serving side's `mor.agent.messages.messages_to_trajectory` does (not imported: `mor.agent` is a
layer above `mor.data`), plus call numbering, result matching and reasoning:

* system (and developer) → `system` turn; user → `user` turn;
* assistant with calls → reasoner (thought: its reasoning and/or its text, else None; next_role executor), then
  executor with the calls, numbered `call_1, call_2, ...` over the trajectory;
* assistant without calls → reasoner (thought: its reasoning, else None; next_role summarizer), then summarizer with
  the text;
* tool → `observation` with the id of the call it answers: by the format's call id when it has one, else the calls of
  the latest assistant message in order. One result for several parallel calls that is a JSON list of one entry per
  call is split into one observation per call.

`metadata.missing` lists what the record did not have, for the completion stage: `thought` (a reasoner turn without
its thought), `observation` (a call without a result), `answer` (the trajectory does not end with the summarizer's
answer), `tools` (calls but no tool list).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from mor.data.readers.base import (
    Malformed,
    Record,
    error_reason,
    expand_paths,
    iter_json_records,
    parse_tools,
)
from mor.data.schema import Tool, ToolCall, Trajectory, TrajectoryMeta, Turn

__all__ = [
    "ChatMessage",
    "Role",
    "chat_trajectory",
    "parse_tools",
    "read_chat_records",
    "read_openai_messages",
    "read_typed_messages",
]

REASONER, EXECUTOR, SUMMARIZER = "reasoner", "executor", "summarizer"

Role = Literal["system", "user", "assistant", "tool"]
"""The roles of a `ChatMessage` (OpenAI's)."""


@dataclass
class ChatMessage:
    """One message of a chat dialect, ready to map: `where` names it in error messages (e.g. `conversations[3]`)."""

    role: Role
    where: str
    content: str | None = None
    reasoning: str | None = None  # the assistant's reasoning, when the format has it
    calls: list[Any] = field(default_factory=list)  # {"name", "arguments"} or OpenAI {"id", "function": {...}}
    call_id: str | None = None  # a tool result's id of the call it answers, when the format has ids


ToChat = Callable[[Record], tuple[list[ChatMessage], list[Tool]]]


def read_chat_records(path: str | Path, source: str, to_chat: ToChat) -> Iterator[Trajectory | Malformed]:
    """Every record of `path` through `to_chat` (record → messages and tools; `ValueError` for a bad record) and
    `chat_trajectory`; a record that fails is a `Malformed` report. Raises `FileNotFoundError` now, not on
    iteration, when `path` names no file."""
    files = expand_paths(path)
    return _chat_records(files, source, to_chat)


def _chat_records(files: list[Path], source: str, to_chat: ToChat) -> Iterator[Trajectory | Malformed]:
    for file in files:
        for position, record in iter_json_records(file):
            if isinstance(record, ValueError):
                yield Malformed(source=source, file=str(file), position=position, reason=str(record))
                continue
            try:
                messages, tools = to_chat(record)
                result: Trajectory | Malformed = chat_trajectory(
                    messages, tools, source=source, file=file, position=position
                )
            except (ValueError, TypeError) as error:  # ValidationError is a ValueError
                result = Malformed(source=source, file=str(file), position=position, reason=error_reason(error))
            yield result


def _call(raw: Any, where: str) -> tuple[str | None, str, dict[str, Any]]:
    """(the format's call id, name, arguments) of one call, `{"name", "arguments"}` or OpenAI's `{"id", "function":
    {"name", "arguments": "<JSON>"}}`."""
    if not isinstance(raw, Mapping):
        raise ValueError(f"{where}: got {raw!r:.80}, expected a call {{'name': ..., 'arguments': {{...}}}}")
    function = raw["function"] if isinstance(raw.get("function"), Mapping) else raw
    name = function.get("name")
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"{where}: a call without a name; expected {{'name': ..., 'arguments': {{...}}}}")
    arguments = function.get("arguments")
    if arguments is None or arguments == "":
        arguments = {}
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments)
        except json.JSONDecodeError:
            raise ValueError(f"{where}: arguments of {name} are not JSON: {arguments[:80]!r}") from None
    if not isinstance(arguments, dict):
        raise ValueError(f"{where}: arguments of {name} must be a JSON object, got {type(arguments).__name__}")
    call_id = raw.get("id")
    return (str(call_id) if call_id else None), name, arguments


def _split_results(content: str | None, count: int) -> list[str] | None:
    """One result per call when `content` is a JSON list of exactly `count` entries, else None."""
    try:
        results = json.loads(content or "")
    except json.JSONDecodeError:
        return None
    if not isinstance(results, list) or len(results) != count:
        return None
    return [r if isinstance(r, str) else json.dumps(r, ensure_ascii=False) for r in results]


def _thought(*parts: str | None) -> str | None:
    text = "\n\n".join(part.strip() for part in parts if part and part.strip())
    return text or None


def chat_trajectory(
    messages: Sequence[ChatMessage],
    tools: Sequence[Tool],
    *,
    source: str,
    file: str | Path,
    position: str,
) -> Trajectory:
    """The trajectory a chat stands for (mapping in the module docstring); `ValueError` naming the message for a
    chat that cannot be one (no user message, a result without a call, a call without a name, ...)."""
    if not any(message.role == "user" for message in messages):
        raise ValueError("no user message")
    turns: list[Turn] = []
    ids: dict[str, str] = {}  # the format's call id -> ours
    open_calls: list[str] = []  # calls of the latest assistant message not yet answered
    answered: set[str] = set()
    number = 0
    for index, message in enumerate(messages):
        if message.role == "system":
            turns.append(Turn(role="system", content=message.content or ""))
        elif message.role == "user":
            turns.append(Turn(role="user", content=message.content or ""))
        elif message.role == "assistant":
            open_calls = []
            calls = []
            for n, raw in enumerate(message.calls):
                given, name, arguments = _call(
                    raw, f"{message.where}.calls[{n}]" if len(message.calls) > 1 else message.where
                )
                number += 1
                calls.append(ToolCall(name=name, arguments=arguments, id=f"call_{number}"))
                if given is not None:
                    ids[given] = f"call_{number}"
                open_calls.append(f"call_{number}")
            if calls:
                turns.append(
                    Turn(role=REASONER, thought=_thought(message.reasoning, message.content), next_role=EXECUTOR)
                )
                turns.append(Turn(role=EXECUTOR, calls=calls))
            else:
                turns.append(Turn(role=REASONER, thought=_thought(message.reasoning), next_role=SUMMARIZER))
                turns.append(Turn(role=SUMMARIZER, content=message.content or ""))
        elif message.role == "tool":
            if message.call_id is not None:
                if message.call_id not in ids:
                    raise ValueError(f"{message.where}: tool_call_id {message.call_id!r} answers no call before it")
                targets = [ids[message.call_id]]
                results = [message.content or ""]
            else:
                if not open_calls:
                    raise ValueError(f"{message.where}: a tool result (observation) with no call before it")
                following = messages[index + 1] if index + 1 < len(messages) else None
                split = None
                if len(open_calls) > 1 and (following is None or following.role != "tool"):
                    split = _split_results(message.content, len(open_calls))
                targets = list(open_calls) if split else open_calls[:1]
                results = split or [message.content or ""]
            for call_id, result in zip(targets, results, strict=True):
                turns.append(Turn(role="observation", content=result, call_id=call_id))
                answered.add(call_id)
                if call_id in open_calls:
                    open_calls.remove(call_id)
        else:
            raise ValueError(f"{message.where}: role {message.role!r}, expected system, user, assistant or tool")
    missing = []
    if any(turn.next_role is not None and turn.thought is None for turn in turns):
        missing.append("thought")
    if len(answered) < number:
        missing.append("observation")
    if turns[-1].role != SUMMARIZER:
        missing.append("answer")
    if number and not tools:
        missing.append("tools")
    return Trajectory(
        id=f"{source}-{Path(file).stem}-{position.split()[-1]}",
        tools=list(tools),
        turns=turns,
        metadata=TrajectoryMeta(source=source, origin=f"{file}:{position}", missing=missing),
    )


def _record_messages(record: Record, key: str = "messages") -> list[Any]:
    if not isinstance(record, Mapping):
        raise ValueError(f"got {type(record).__name__}, expected an object with {key!r}")
    messages = record.get(key)
    if not isinstance(messages, list) or not messages:
        raise ValueError(f"{key}: missing or empty; expected a list of messages")
    return messages


def _openai_text(content: Any, where: str) -> str | None:
    """An OpenAI message's content as text: a string, or the text parts of a list."""
    if content is None or isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for n, part in enumerate(content):
            kind = part.get("type") if isinstance(part, Mapping) else None
            if kind != "text" or not isinstance(part.get("text"), str):
                raise ValueError(f"{where}.content[{n}]: got part type {kind!r}; only text parts are read")
            texts.append(part["text"])
        return "".join(texts)
    raise ValueError(f"{where}.content: got {type(content).__name__}, expected a string or a list of text parts")


def _openai_chat(record: Record) -> tuple[list[ChatMessage], list[Tool]]:
    messages = []
    for index, message in enumerate(_record_messages(record)):
        where = f"messages[{index}]"
        if not isinstance(message, Mapping):
            raise ValueError(f"{where}: got {type(message).__name__}, expected a message object")
        role = message.get("role")
        content = _openai_text(message.get("content"), where)
        if role in ("system", "developer"):
            messages.append(ChatMessage("system", where, content=content))
        elif role == "user":
            messages.append(ChatMessage("user", where, content=content))
        elif role == "assistant":
            calls = message.get("tool_calls") or []
            if message.get("function_call"):  # the legacy single call
                calls = [*calls, {"function": message["function_call"]}]
            if not isinstance(calls, list):
                raise ValueError(f"{where}.tool_calls: got {type(calls).__name__}, expected a list")
            reasoning = message.get("reasoning_content") or message.get("reasoning")
            reasoning = reasoning if isinstance(reasoning, str) else None
            messages.append(ChatMessage("assistant", where, content=content, reasoning=reasoning, calls=calls))
        elif role in ("tool", "function"):
            call_id = message.get("tool_call_id")
            messages.append(ChatMessage("tool", where, content=content, call_id=str(call_id) if call_id else None))
        else:
            raise ValueError(f"{where}.role: got {role!r}, expected system, developer, user, assistant or tool")
    tools = record.get("tools") or record.get("functions")
    return messages, parse_tools(tools, where="tools" if record.get("tools") else "functions")


def read_openai_messages(path: str | Path) -> Iterator[Trajectory | Malformed]:
    """Every record of `path` (file, directory or glob) in the OpenAI chat-messages format, as trajectories or
    `Malformed` reports."""
    return read_chat_records(path, "openai_messages", _openai_chat)


_MEDIA_PARTS = ("image_url", "video_url", "audio_url")


def _typed_chat(record: Record) -> tuple[list[ChatMessage], list[Tool]]:
    messages = []
    for index, message in enumerate(_record_messages(record)):
        where = f"messages[{index}]"
        if not isinstance(message, Mapping):
            raise ValueError(f"{where}: got {type(message).__name__}, expected a message object")
        role = message.get("role")
        if role not in ("system", "user", "assistant", "tool"):
            raise ValueError(f"{where}.role: got {role!r}, expected system, user, assistant or tool")
        parts = message.get("content")
        if isinstance(parts, str):
            parts = [{"type": "text", "value": parts}]
        if not isinstance(parts, list):
            raise ValueError(f"{where}.content: got {type(parts).__name__}, expected a list of typed parts")
        texts: list[str] = []
        reasoning: list[str] = []
        calls: list[Any] = []
        for n, part in enumerate(parts):
            at = f"{where}.content[{n}]"
            kind = part.get("type") if isinstance(part, Mapping) else None
            value = part.get("value", part.get("text")) if isinstance(part, Mapping) else None
            if kind in ("tool_call", "tool_calls"):
                if role != "assistant":
                    raise ValueError(f"{at}: a {kind} part in a {role} message; calls are the assistant's")
                if isinstance(value, str):
                    try:
                        value = json.loads(value)
                    except json.JSONDecodeError:
                        raise ValueError(f"{at}: the {kind} value is not JSON: {value[:80]!r}") from None
                calls.extend(value if isinstance(value, list) else [value])
            elif kind in ("text", "reasoning"):
                if not isinstance(value, str):
                    raise ValueError(f"{at}: a {kind} part without a string value")
                (texts if kind == "text" else reasoning).append(value)
            elif kind in _MEDIA_PARTS:
                raise ValueError(f"{at}: {kind} parts are not read; trajectories are text only")
            else:
                raise ValueError(f"{at}.type: got {kind!r}, expected text, reasoning or tool_call")
        if reasoning and role != "assistant":
            raise ValueError(f"{where}: a reasoning part in a {role} message; reasoning is the assistant's")
        messages.append(
            ChatMessage(role, where, content="".join(texts), reasoning="".join(reasoning) or None, calls=calls)
        )
    return messages, parse_tools(record.get("tools"))


def read_typed_messages(path: str | Path) -> Iterator[Trajectory | Malformed]:
    """Every record of `path` (file, directory or glob) in LLaMA-Factory's typed-content messages format, as
    trajectories or `Malformed` reports; a reasoning part is the reasoner's thought."""
    return read_chat_records(path, "typed_messages", _typed_chat)
