"""The request's tools and tool_choice: schema checks, which roles the reasoner may hand over to, which functions
the executor may call, and a post-decoding check of every call against its schema."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from jsonschema import exceptions as schema_errors
from jsonschema import validators

from mor.data.schema import Tool, ToolCall
from mor.serve.errors import APIError
from mor.serve.protocol import AllowedTools, ChatRequest, NamedToolChoice

__all__ = ["ToolPlan", "check_calls", "plan_tools"]

_EMPTY_PARAMETERS: dict[str, Any] = {"type": "object", "properties": {}}


@dataclass(frozen=True)
class ToolPlan:
    """What the request allows this turn."""

    tools: list[Tool]
    """Every offered tool (all are shown to the model, as in training)."""
    callable: list[Tool]
    """The functions the executor may call this turn."""
    executor_allowed: bool
    summarizer_allowed: bool
    executor_required: bool
    parallel: bool


def _check_schema(index: int, parameters: dict[str, Any]) -> None:
    where = f"tools[{index}].function.parameters"
    try:
        validators.validator_for(parameters).check_schema(parameters)
    except schema_errors.SchemaError as error:
        path = "".join(f"[{part!r}]" if isinstance(part, str) else f"[{part}]" for part in error.path)
        raise APIError(
            400,
            f"{where}{path}: not a valid JSON Schema ({error.message}); fix the schema, e.g. "
            "{'type': 'object', 'properties': {'city': {'type': 'string'}}}",
            param=where,
            code="invalid_tool_schema",
        ) from None
    except (RecursionError, ValueError, TypeError) as error:
        raise APIError(
            400,
            f"{where}: cannot be read as a JSON Schema ({type(error).__name__}); simplify it",
            param=where,
            code="invalid_tool_schema",
        ) from None
    kind = parameters.get("type", "object")
    if kind != "object" and not (isinstance(kind, list) and "object" in kind):
        raise APIError(
            400,
            f"{where}.type: got {kind!r}, must be 'object' (function arguments are a JSON object)",
            param=f"{where}.type",
            code="invalid_tool_schema",
        )


def _named(tools: dict[str, Tool], name: str, where: str) -> Tool:
    if name not in tools:
        raise APIError(
            400,
            f"{where}: got {name!r}, which is not among the tools {sorted(tools)}; name one of them",
            param=where,
            code="invalid_tool_choice",
        )
    return tools[name]


def plan_tools(request: ChatRequest, *, has_executor: bool, has_summarizer: bool) -> ToolPlan:
    """Check the tools and resolve `tool_choice`; raises `APIError` (400) for bad schemas or choices."""
    tools: list[Tool] = []
    seen: set[str] = set()
    for index, entry in enumerate(request.tools or []):
        function = entry.function
        if function.name in seen:
            raise APIError(
                400,
                f"tools[{index}].function.name: {function.name!r} is offered twice; give each function once",
                param=f"tools[{index}].function.name",
                code="invalid_request",
            )
        seen.add(function.name)
        parameters = function.parameters if function.parameters is not None else dict(_EMPTY_PARAMETERS)
        _check_schema(index, parameters)
        tools.append(Tool(name=function.name, description=function.description or "", parameters=parameters))
    by_name = {tool.name: tool for tool in tools}
    choice = request.tool_choice
    callable_tools = list(tools)
    required = False
    if choice == "none":
        callable_tools = []
    elif choice == "required":
        required = True
    elif isinstance(choice, NamedToolChoice):
        callable_tools = [_named(by_name, choice.function.name, "tool_choice.function.name")]
        required = True
    elif isinstance(choice, AllowedTools):
        names = []
        for n, item in enumerate(choice.allowed_tools.tools):
            function = item.get("function") if isinstance(item.get("function"), dict) else item
            name = function.get("name") if isinstance(function, dict) else None
            if not isinstance(name, str):
                raise APIError(
                    400,
                    f"tool_choice.allowed_tools.tools[{n}]: expected {{'type': 'function', "
                    "'function': {'name': ...}}",
                    param=f"tool_choice.allowed_tools.tools[{n}]",
                    code="invalid_tool_choice",
                )
            names.append(name)
        callable_tools = [_named(by_name, name, "tool_choice.allowed_tools.tools") for name in dict.fromkeys(names)]
        required = choice.allowed_tools.mode == "required"
    if required and not callable_tools:
        raise APIError(
            400,
            "tool_choice: requires a tool call but the request offers no tools; add tools or use tool_choice 'auto'",
            param="tool_choice",
            code="invalid_tool_choice",
        )
    if required and not has_executor:
        raise APIError(
            400,
            "tool_choice: requires a tool call but this agent has no executor role",
            param="tool_choice",
            code="invalid_tool_choice",
        )
    executor_allowed = bool(callable_tools) and has_executor
    return ToolPlan(
        tools=tools,
        callable=callable_tools,
        executor_allowed=executor_allowed,
        summarizer_allowed=has_summarizer and not required,
        executor_required=required,
        parallel=request.parallel_tool_calls is not False,
    )


def check_calls(calls: Sequence[ToolCall], allowed: Sequence[Tool]) -> str | None:
    """Why a decoded call is not valid for the allowed functions (None when all are valid)."""
    by_name = {tool.name: tool for tool in allowed}
    for call in calls:
        tool = by_name.get(call.name)
        if tool is None:
            return f"function {call.name!r} is not among {sorted(by_name)}"
        validator = validators.validator_for(tool.parameters)(tool.parameters)
        error = next(iter(validator.iter_errors(call.arguments)), None)
        if error is not None:
            return f"arguments of {call.name}: {error.message}"
    return None
