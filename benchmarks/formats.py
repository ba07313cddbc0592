"""Writers of unified trajectories into the public formats `mor.data.readers` reads (for benchmarking the readers
on corpora no sample exists for), and the round-trip check that a written corpus reads back whole.

Each writer maps one trajectory to one record of its format, or None when the format cannot hold it (xLAM: no
calls; ToolACE: a call left without a result before the next message). Thoughts are written where the format has a
place for them (OpenAI `reasoning_content`, a typed `reasoning` part, glaive's text before `<functioncall>`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mor.data.readers import Malformed, read
from mor.data.schema import Tool, ToolCall, Trajectory

__all__ = ["WRITERS", "check_round_trip", "write_corpus"]


@dataclass
class _Message:
    """One chat message of a trajectory: OpenAI's roles, the reasoner's thought folded into the assistant's."""

    role: str  # system | user | assistant | tool
    content: str | None = None
    thought: str | None = None
    calls: list[ToolCall] = field(default_factory=list)
    call_id: str | None = None


def _messages(trajectory: Trajectory) -> list[_Message]:
    messages: list[_Message] = []
    thought: str | None = None
    for turn in trajectory.turns:
        if turn.role in ("system", "user"):
            messages.append(_Message(turn.role, content=turn.content or ""))
        elif turn.role == "observation":
            messages.append(_Message("tool", content=turn.content or "", call_id=turn.call_id))
        elif turn.next_role is not None:
            thought = turn.thought
        else:  # executor (calls) or summarizer (content)
            messages.append(_Message("assistant", content=turn.content, thought=thought, calls=list(turn.calls)))
            thought = None
    return messages


def _function(tool: Tool) -> dict[str, Any]:
    return {"name": tool.name, "description": tool.description, "parameters": tool.parameters}


def _glaive(trajectory: Trajectory) -> dict[str, Any] | None:
    system = "SYSTEM: You are a helpful assistant"
    if trajectory.tools:
        functions = "\n\n".join(json.dumps(_function(tool), indent=4) for tool in trajectory.tools)
        system += " with access to the following functions. Use them if required -\n" + functions
    parts = []
    for message in _messages(trajectory):
        if message.role == "user":
            parts.append(f"USER: {message.content}")
        elif message.role == "tool":
            parts.append(f"FUNCTION RESPONSE: {message.content}")
        elif message.calls:  # the raw data's single-quoted arguments JSON
            calls = " ".join(
                f'<functioncall> {{"name": "{c.name}", "arguments": \'{json.dumps(c.arguments)}\'}}'
                for c in message.calls
            )
            parts.append(f"ASSISTANT: {message.thought + ' ' if message.thought else ''}{calls} <|endoftext|>")
        elif message.role == "assistant":
            parts.append(f"ASSISTANT: {message.content} <|endoftext|>")
    return {"system": system, "chat": "\n\n\n".join(parts) + "\n"}


def _openai(trajectory: Trajectory) -> dict[str, Any] | None:
    out: list[dict[str, Any]] = []
    for message in _messages(trajectory):
        entry: dict[str, Any] = {"role": message.role, "content": message.content}
        if message.calls:
            entry["tool_calls"] = [
                {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": json.dumps(c.arguments)}}
                for c in message.calls
            ]
        if message.thought:
            entry["reasoning_content"] = message.thought
        if message.call_id:
            entry["tool_call_id"] = message.call_id
        out.append(entry)
    return {"messages": out, "tools": [tool.to_openai() for tool in trajectory.tools]}


def _typed(trajectory: Trajectory) -> dict[str, Any] | None:
    out = []
    for message in _messages(trajectory):
        parts = [{"type": "reasoning", "value": message.thought}] if message.thought else []
        if message.content:
            parts.append({"type": "text", "value": message.content})
        parts += [
            {"type": "tool_call", "value": json.dumps({"name": c.name, "arguments": c.arguments})}
            for c in message.calls
        ]
        out.append({"role": message.role, "content": parts})
    return {"messages": out, "tools": json.dumps([_function(tool) for tool in trajectory.tools])}


def _toolace(trajectory: Trajectory) -> dict[str, Any] | None:
    functions = json.dumps([_function(tool) for tool in trajectory.tools])
    system = (
        "You are an expert in composing functions. Here is a list of functions in JSON format that you can "
        f"invoke:\n{functions}. \nShould you decide to return the function call(s), put them in the format "
        "[func1(params_name=params_value), func2(...)]."
    )
    conversations: list[dict[str, str]] = []
    names: dict[str, str] = {}  # call id -> function name
    awaiting = 0
    for message in _messages(trajectory):
        if message.role == "tool":
            if not awaiting:
                return None
            result = {"name": names.get(message.call_id or "", ""), "results": message.content}
            last = conversations[-1]
            if last["from"] == "tool":  # results of parallel calls share one tool message
                last["value"] = json.dumps([*json.loads(last["value"]), result])
            else:
                conversations.append({"from": "tool", "value": json.dumps([result])})
            awaiting -= 1
            continue
        if awaiting or message.role == "system":
            return None  # a call without a result before the next message; a system turn of its own
        if message.calls:
            names.update({c.id or "": c.name for c in message.calls})
            awaiting = len(message.calls)
            calls = ", ".join(
                f"{c.name}({', '.join(f'{k}={json.dumps(v)}' for k, v in c.arguments.items())})" for c in message.calls
            )
            conversations.append({"from": "assistant", "value": f"[{calls}]"})
        else:
            conversations.append({"from": message.role, "value": message.content or ""})
    return {"system": system, "conversations": conversations}


_XLAM_TYPES = {"string": "str", "integer": "int", "number": "float", "boolean": "bool", "object": "dict"}


def _xlam_type(schema: dict[str, Any]) -> str:
    kind = schema.get("type")
    if kind == "array":
        items = _xlam_type(schema.get("items") or {})
        return f"List[{items}]" if items else "List"
    return _XLAM_TYPES.get(kind, "Any") if isinstance(kind, str) else "Any"


def _xlam_parameters(tool: Tool) -> dict[str, Any]:
    """xLAM's map of parameter name -> `{"type": "List[str], optional", "description", "default"}`."""
    out = {}
    for name, schema in tool.properties.items():
        entry = {"description": schema.get("description", ""), "type": _xlam_type(schema)}
        if name not in tool.required:
            entry["type"] += ", optional"
            entry["default"] = schema.get("default", "")
        out[name] = entry
    return out


def _xlam(trajectory: Trajectory) -> dict[str, Any] | None:
    if not trajectory.calls or trajectory.query is None:
        return None
    tools = [{**_function(tool), "parameters": _xlam_parameters(tool)} for tool in trajectory.tools]
    answers = [{"name": c.name, "arguments": c.arguments} for c in trajectory.calls]
    return {"id": trajectory.id, "query": trajectory.query, "tools": json.dumps(tools), "answers": json.dumps(answers)}


#: format name (as `mor.data.readers.READERS` names it) -> writer of one trajectory.
WRITERS: dict[str, Callable[[Trajectory], dict[str, Any] | None]] = {
    "glaive": _glaive,
    "openai_messages": _openai,
    "typed_messages": _typed,
    "toolace": _toolace,
    "xlam": _xlam,
}


def write_corpus(name: str, trajectories: Iterable[Trajectory], path: Path) -> list[Trajectory]:
    """Write the trajectories format `name` can hold to `path` (JSON lines); returns those written, in order."""
    written = []
    with path.open("w", encoding="utf-8") as handle:
        for trajectory in trajectories:
            record = WRITERS[name](trajectory)
            if record is not None:
                handle.write(json.dumps(record, ensure_ascii=False) + "\n")
                written.append(trajectory)
    return written


def _call_keys(trajectory: Trajectory) -> list[tuple[str, str]]:
    return [call.key() for call in trajectory.calls]


def check_round_trip(name: str, path: Path, written: list[Trajectory]) -> None:
    """Raise `AssertionError` unless reading `path` back gives one trajectory per written one, none malformed, each
    with the same calls (names and arguments, in order)."""
    back: Iterator[Trajectory | Malformed] = read(name, path)
    records = list(back)
    malformed = [str(record) for record in records if isinstance(record, Malformed)]
    if malformed:
        raise AssertionError(f"{name}: {len(malformed)} written records read back malformed, e.g. {malformed[0]}")
    if len(records) != len(written):
        raise AssertionError(f"{name}: wrote {len(written)} records, read back {len(records)}")
    for original, read_back in zip(written, records, strict=True):
        assert isinstance(read_back, Trajectory)
        if _call_keys(original) != _call_keys(read_back):
            raise AssertionError(
                f"{name}: {original.id} has calls {_call_keys(original)}, read back as {_call_keys(read_back)}"
            )
