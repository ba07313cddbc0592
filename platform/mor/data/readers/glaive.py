"""Reader of glaive-function-calling-v2 in its raw text form:

    {"system": "SYSTEM: You are a helpful assistant with access to the following functions. Use them if required -
                {function JSON} {function JSON}",
     "chat": "USER: ... ASSISTANT: <functioncall> {\"name\": ..., \"arguments\": '{...}'} <|endoftext|>
              FUNCTION RESPONSE: {...} ASSISTANT: ... <|endoftext|> USER: ..."}

Mapping (through `mor.data.readers.messages.chat_trajectory`): the system text before the function definitions →
system turn, the definitions → tools; `USER:` → user turn; `ASSISTANT: <functioncall> {...}` → reasoner hand-over
(its thought: text before `<functioncall>`, if any, else None and `thought` in `metadata.missing`) + executor; the
call's arguments may be an object, a JSON string, or (as mostly in the raw data) a single-quoted JSON string;
`FUNCTION RESPONSE:` → observation of the call; any other `ASSISTANT:` → reasoner hand-over to the summarizer +
summarizer with the text. `<|endoftext|>` markers are dropped. A multi-turn chat is one trajectory.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from mor.data.readers.base import Malformed, Record
from mor.data.readers.messages import ChatMessage, Role, parse_tools, read_chat_records
from mor.data.schema import Tool, Trajectory

__all__ = ["read_glaive"]

_ROLES: dict[str, Role] = {"USER": "user", "ASSISTANT": "assistant", "FUNCTION RESPONSE": "tool", "SYSTEM": "system"}
_MARKER = re.compile(r"(?:^|\n)[ \t]*(USER|ASSISTANT|FUNCTION RESPONSE|SYSTEM):[ \t]*")
_END = "<|endoftext|>"
_CALL = "<functioncall>"
# {"name": "f", "arguments": '{...}'}: the raw data quotes the arguments JSON with single quotes (not JSON).
_QUOTED_CALL = re.compile(
    r"\{\s*\"name\"\s*:\s*\"(?P<name>[^\"]*)\"\s*,\s*\"arguments\"\s*:\s*'(?P<arguments>.*)'\s*\}", re.S
)
_DECODER = json.JSONDecoder()


def read_glaive(path: str | Path) -> Iterator[Trajectory | Malformed]:
    """Every record of `path` (file, directory or glob) in the raw glaive-function-calling-v2 form, as trajectories
    or `Malformed` reports. Raises `FileNotFoundError` when `path` names no file."""
    return read_chat_records(path, "glaive", _chat)


def _system(text: str) -> tuple[str, list[Tool]]:
    """The prose of a system prompt (its `SYSTEM:` prefix dropped) and the functions defined in it."""
    text = text.strip().removeprefix("SYSTEM:").strip()
    start = text.find("{")
    if start < 0:
        return text, []
    prose, functions, rest = [text[:start].strip()], [], start
    while rest < len(text) and text[rest] == "{":
        try:
            function, end = _DECODER.raw_decode(text, rest)
        except json.JSONDecodeError as error:
            raise ValueError(f"system: function {len(functions) + 1} is not valid JSON ({error.msg})") from None
        functions.append(function)
        rest = end
        while rest < len(text) and text[rest].isspace():
            rest += 1
    prose.append(text[rest:].strip())
    return "\n".join(part for part in prose if part), parse_tools(functions, where="system")


def _call(text: str, where: str) -> dict[str, Any]:
    """One `<functioncall>` body as `{"name", "arguments"}` (arguments may still be a JSON string)."""
    text = text.strip()
    try:
        call = json.loads(text)
    except json.JSONDecodeError:
        match = _QUOTED_CALL.fullmatch(text)
        if match is None:
            raise ValueError(f"{where}: the function call is not JSON: {text[:80]!r}") from None
        return {"name": match["name"], "arguments": match["arguments"]}
    if not isinstance(call, Mapping):
        raise ValueError(f"{where}: the function call is {type(call).__name__}, expected {{'name', 'arguments'}}")
    return dict(call)


def _chat(record: Record) -> tuple[list[ChatMessage], list[Tool]]:
    if not isinstance(record, Mapping):
        raise ValueError(f"got {type(record).__name__}, expected an object with 'system' and 'chat'")
    chat, system = record.get("chat"), record.get("system")
    if not isinstance(chat, str) or not chat.strip():
        raise ValueError("chat: missing or empty; expected 'USER: ... ASSISTANT: ...'")
    if system is not None and not isinstance(system, str):
        raise ValueError(f"system: got {type(system).__name__}, expected a string")
    messages, tools = [], []
    if system and system.strip():
        prose, tools = _system(system)
        if prose:
            messages.append(ChatMessage("system", "system", content=prose))
    markers = list(_MARKER.finditer(chat))
    if not markers:
        raise ValueError("chat: no 'USER:', 'ASSISTANT:' or 'FUNCTION RESPONSE:' marker")
    if chat[: markers[0].start()].strip():
        raise ValueError(f"chat: text before the first role marker: {chat[: markers[0].start()].strip()[:60]!r}")
    for number, marker in enumerate(markers, start=1):
        end = markers[number].start() if number < len(markers) else len(chat)
        body = chat[marker.end() : end].replace(_END, "").strip()
        role, where = _ROLES[marker[1]], f"chat turn {number} ({marker[1]})"
        if role == "assistant" and _CALL in body:
            before, *calls = body.split(_CALL)
            messages.append(
                ChatMessage("assistant", where, content=before.strip() or None, calls=[_call(c, where) for c in calls])
            )
        else:
            messages.append(ChatMessage(role, where, content=body))
    return messages, tools
