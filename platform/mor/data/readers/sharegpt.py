"""Reader of LLaMA-Factory's sharegpt format with tools (the form its glaive_toolcall data is in):

    {"conversations": [{"from": "human" | "gpt" | "function_call" | "observation" | "system", "value": ...}],
     "system": "...", "tools": "<JSON list of functions>"}

Mapping (through `mor.data.readers.messages.chat_trajectory`): `system` → system turn (a first `system` message
replaces the system column, as in LLaMA-Factory); `human` → user turn; `function_call` (JSON: one call
`{"name", "arguments"}` or a list of parallel calls) → reasoner hand-over without a thought (the format has none:
`thought` in `metadata.missing`) + executor; `observation` → observation of the open calls (a JSON list with one
result per parallel call is split); `gpt` → reasoner hand-over to the summarizer + summarizer with the text. A
multi-turn conversation is one trajectory.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from functools import partial
from pathlib import Path
from typing import Any

from mor.data.readers.base import Malformed, Record
from mor.data.readers.messages import ChatMessage, Role, parse_tools, read_chat_records
from mor.data.schema import Tool, Trajectory

__all__ = ["DEFAULT_COLUMNS", "read_sharegpt"]

#: Column and tag names, as LLaMA-Factory's dataset_info.json spells them (`columns` and `tags` merged).
DEFAULT_COLUMNS: dict[str, str | None] = {
    "messages": "conversations",
    "system": "system",
    "tools": "tools",
    "role_tag": "from",
    "content_tag": "value",
    "user_tag": "human",
    "assistant_tag": "gpt",
    "observation_tag": "observation",
    "function_tag": "function_call",
    "system_tag": "system",
}
_OPTIONAL = ("system", "tools")  # columns that may be None (the format has none)


def read_sharegpt(
    path: str | Path, *, columns: Mapping[str, str | None] | None = None
) -> Iterator[Trajectory | Malformed]:
    """Every record of `path` (file, directory or glob) in the sharegpt format, as trajectories or `Malformed`
    reports.

    `columns` renames columns and tags as LLaMA-Factory's dataset_info.json does (its `columns` and `tags` merged;
    keys in `DEFAULT_COLUMNS`), e.g. `{"messages": "messages", "role_tag": "role", "content_tag": "content",
    "user_tag": "user", "assistant_tag": "assistant", "observation_tag": "tool"}`. Raises `ValueError` for an unknown
    key and `FileNotFoundError` when `path` names no file.
    """
    names = dict(DEFAULT_COLUMNS)
    problems = []
    for key, value in (columns or {}).items():
        if key not in DEFAULT_COLUMNS:
            problems.append(f"columns.{key}: unknown; known keys: {', '.join(DEFAULT_COLUMNS)}")
        elif not (isinstance(value, str) and value) and not (value is None and key in _OPTIONAL):
            problems.append(f"columns.{key}: got {value!r}, must be a non-empty string")
        else:
            names[key] = value
    if problems:
        raise ValueError("; ".join(problems))
    return read_chat_records(path, "sharegpt", partial(_chat, names))


def _calls(value: Any, tag: str, where: str) -> list[Any]:
    """The call(s) of a function_call message: one `{"name", "arguments"}` or a list (parallel calls)."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as error:
            raise ValueError(f"{where}: the {tag} value is not JSON ({error.msg}): {value[:80]!r}") from None
    calls = value if isinstance(value, list) else [value]
    if not calls:
        raise ValueError(f"{where}: the {tag} value holds no call")
    return calls


def _chat(names: Mapping[str, Any], record: Record) -> tuple[list[ChatMessage], list[Tool]]:
    key, role_tag, content_tag = names["messages"], names["role_tag"], names["content_tag"]
    if not isinstance(record, Mapping):
        raise ValueError(f"got {type(record).__name__}, expected an object with {key!r}")
    conversation = record.get(key)
    if not isinstance(conversation, list) or not conversation:
        raise ValueError(f"{key}: missing or empty; expected a list of messages")
    text_roles: dict[Any, Role] = {
        names["user_tag"]: "user",
        names["assistant_tag"]: "assistant",
        names["observation_tag"]: "tool",
        names["system_tag"]: "system",
    }
    messages = []
    for index, message in enumerate(conversation):
        where = f"{key}[{index}]"
        if not isinstance(message, Mapping):
            raise ValueError(f"{where}: got {type(message).__name__}, expected a message object")
        tag, value = message.get(role_tag), message.get(content_tag)
        if tag == names["function_tag"]:
            messages.append(ChatMessage("assistant", where, calls=_calls(value, tag, where)))
        elif tag in text_roles:
            if not isinstance(value, str):
                raise ValueError(f"{where}.{content_tag}: got {type(value).__name__}, expected a string")
            messages.append(ChatMessage(text_roles[tag], where, content=value))
        else:
            known = ", ".join(repr(t) for t in (*text_roles, names["function_tag"]))
            raise ValueError(f"{where}.{role_tag}: got {tag!r}, expected one of {known} (rename tags with columns=)")
    system = record.get(names["system"]) if names["system"] else None
    if system is not None and not isinstance(system, str):
        raise ValueError(f"{names['system']}: got {type(system).__name__}, expected a string")
    if system and messages[0].role != "system":
        messages.insert(0, ChatMessage("system", names["system"], content=system))
    tools = parse_tools(record.get(names["tools"]), where=names["tools"]) if names["tools"] else []
    return messages, tools
