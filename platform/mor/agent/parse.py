"""Parsing of role outputs: the reasoner's thought + next role, the executor's function calls.

Parsers never raise on bad model output: they return a `ParseFailure` the agent records against the role.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

from mor.data.render import END
from mor.data.schema import Tool, ToolCall

__all__ = ["ParseFailure", "clean_output", "parse_reasoner", "parse_calls"]

_NEXT = re.compile(r"(?:^|\s)Next:\s*([A-Za-z_][A-Za-z0-9_]*)\W*$")


@dataclass(frozen=True)
class ParseFailure:
    """Why a role's output could not be used."""

    reason: str


def clean_output(text: str) -> str:
    """The role's text up to its end marker, stripped."""
    return text.split(END, 1)[0].strip()


def parse_reasoner(text: str, next_roles: Collection[str]) -> tuple[str | None, str] | ParseFailure:
    """`(thought, next_role)` from `thought Next: role`; the role must be one of `next_roles`."""
    body = clean_output(text)
    match = _NEXT.search(body)
    if match is None:
        return ParseFailure(f"no 'Next: <role>' at the end of the reasoner output {body[-80:]!r}")
    role = match.group(1)
    if role not in next_roles:
        return ParseFailure(f"reasoner chose next role {role!r}, expected one of {sorted(next_roles)}")
    thought = body[: match.start()].strip() or None
    return thought, role


def _as_call(obj: Any, tools: dict[str, Tool]) -> ToolCall | ParseFailure:
    if not isinstance(obj, dict):
        return ParseFailure(f"a call must be a JSON object with name and arguments, got {type(obj).__name__}")
    name = obj.get("name")
    if not isinstance(name, str) or not name:
        return ParseFailure(f"call without a function name: {json.dumps(obj, ensure_ascii=False)[:120]}")
    if tools and name not in tools:
        return ParseFailure(f"unknown function {name!r}; candidates: {sorted(tools)}")
    arguments = obj.get("arguments", {})
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments) if arguments.strip() else {}
        except json.JSONDecodeError as error:
            return ParseFailure(f"arguments of {name} are not valid JSON: {error.msg}")
    if not isinstance(arguments, dict):
        return ParseFailure(f"arguments of {name} must be a JSON object, got {type(arguments).__name__}")
    return ToolCall(name=name, arguments=arguments)


def parse_calls(text: str, tools: Sequence[Tool]) -> list[ToolCall] | ParseFailure:
    """Function calls from the executor output: one JSON object per line, or one JSON object/array in all."""
    body = clean_output(text)
    if not body:
        return ParseFailure("the executor produced no call")
    by_name = {tool.name: tool for tool in tools}
    try:
        whole = json.loads(body)
    except json.JSONDecodeError:
        whole = None
        objects: list[Any] = []
        for line in (line.strip() for line in body.splitlines()):
            if not line:
                continue
            try:
                objects.append(json.loads(line))
            except json.JSONDecodeError as error:
                return ParseFailure(
                    f"executor output is not valid JSON ({error.msg} at column {error.colno}): {line[:120]!r}"
                )
    else:
        objects = whole if isinstance(whole, list) else [whole]
    if not objects:
        return ParseFailure("the executor produced no call")
    calls: list[ToolCall] = []
    for obj in objects:
        call = _as_call(obj, by_name)
        if isinstance(call, ParseFailure):
            return call
        calls.append(call)
    return calls
