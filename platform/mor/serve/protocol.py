"""The request side of `POST /v1/chat/completions`: strict pydantic models of the OpenAI fields mor reads, and
their translation into an OpenAI-style 400 that names every bad field at once.

Top-level fields are strict (`extra="forbid"`, no type coercion), like OpenAI's own "Unrecognized request
argument"; message objects ignore fields they do not know (clients echo back assistant messages with extra keys
such as `refusal` or `annotations`) but check the types of the ones they do.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, TypeAdapter, ValidationError

from mor.serve.errors import APIError

__all__ = [
    "AllowedTools",
    "ChatRequest",
    "FunctionDef",
    "Message",
    "NamedToolChoice",
    "ToolDef",
    "parse_chat_request",
]

_MAX_ERRORS = 6


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)


class TextPart(_Lenient):
    """A text part of a content list."""

    type: Literal["text"]
    text: str


class RefusalPart(_Lenient):
    """A refusal part (assistant messages only)."""

    type: Literal["refusal"]
    refusal: str


def _kind(value: Any) -> str | None:
    """Branch of a `str | list` or `str | object` union, so errors come only from the branch the value took."""
    if isinstance(value, str):
        return "=str"
    if isinstance(value, list):
        return "=list"
    if isinstance(value, dict):
        return "=object"
    return None


Content = Annotated[Annotated[str, Tag("=str")] | Annotated[list[TextPart], Tag("=list")], Discriminator(_kind)]


class FunctionCallParam(_Lenient):
    """The function of a tool call in an assistant message."""

    name: str = Field(min_length=1)
    arguments: str


class ToolCallParam(_Lenient):
    """A tool call of an earlier assistant message."""

    id: str
    type: Literal["function"] = "function"
    function: FunctionCallParam


class SystemMessage(_Lenient):
    """A system (or developer) message."""

    role: Literal["system", "developer"]
    content: Content
    name: str | None = None


class UserMessage(_Lenient):
    """A user message; only text content is understood by the agent."""

    role: Literal["user"]
    content: Content
    name: str | None = None


class AssistantMessage(_Lenient):
    """An earlier assistant message: tool calls (with the thought as content or reasoning_content) or an answer."""

    role: Literal["assistant"]
    content: (
        Annotated[
            Annotated[str, Tag("=str")] | Annotated[list[TextPart | RefusalPart], Tag("=list")], Discriminator(_kind)
        ]
        | None
    ) = None
    tool_calls: list[ToolCallParam] | None = None
    reasoning_content: str | None = None
    name: str | None = None
    refusal: str | None = None


class ToolMessage(_Lenient):
    """The result of one tool call."""

    role: Literal["tool"]
    content: Content
    tool_call_id: str = Field(min_length=1)


_ROLE_TAGS = {"system": "=system", "developer": "=system", "user": "=user", "assistant": "=assistant", "tool": "=tool"}


def _role_tag(value: Any) -> str | None:
    role = value.get("role") if isinstance(value, dict) else getattr(value, "role", None)
    return _ROLE_TAGS.get(role) if isinstance(role, str) else None


Message = Annotated[
    Annotated[SystemMessage, Tag("=system")]
    | Annotated[UserMessage, Tag("=user")]
    | Annotated[AssistantMessage, Tag("=assistant")]
    | Annotated[ToolMessage, Tag("=tool")],
    Discriminator(
        _role_tag,
        custom_error_type="invalid_role",
        custom_error_message="must have a role of system, developer, user, assistant or tool",
    ),
]


class FunctionDef(_Strict):
    """A function the executor may call: name, description and JSON-schema parameters."""

    name: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class ToolDef(_Strict):
    """An entry of `tools` (function tools only)."""

    type: Literal["function"]
    function: FunctionDef


class _NamedFunction(_Strict):
    name: str = Field(min_length=1)


class NamedToolChoice(_Strict):
    """`tool_choice: {"type": "function", "function": {"name": ...}}`."""

    type: Literal["function"]
    function: _NamedFunction


class _AllowedToolsSpec(_Strict):
    mode: Literal["auto", "required"]
    tools: list[dict[str, Any]] = Field(min_length=1)


class AllowedTools(_Strict):
    """`tool_choice: {"type": "allowed_tools", "allowed_tools": {"mode": ..., "tools": [...]}}`."""

    type: Literal["allowed_tools"]
    allowed_tools: _AllowedToolsSpec


class StreamOptions(_Strict):
    """`stream_options`."""

    include_usage: bool | None = None
    include_obfuscation: bool | None = None


class ResponseFormat(_Strict):
    """`response_format`: only plain text is produced by the summarizer."""

    type: Literal["text", "json_object", "json_schema"]
    json_schema: dict[str, Any] | None = None


def _choice_kind(value: Any) -> str | None:
    if isinstance(value, str):
        return "=mode"
    if isinstance(value, dict):
        return "=allowed" if value.get("type") == "allowed_tools" else "=named"
    return None


ToolChoice = Annotated[
    Annotated[Literal["none", "auto", "required"], Tag("=mode")]
    | Annotated[NamedToolChoice, Tag("=named")]
    | Annotated[AllowedTools, Tag("=allowed")],
    Discriminator(
        _choice_kind,
        custom_error_type="invalid_tool_choice",
        custom_error_message="must be 'none', 'auto', 'required' or {'type': 'function', 'function': {'name': ...}}",
    ),
]


class ChatRequest(_Strict):
    """The fields of an OpenAI chat-completions request that the served agent understands."""

    model: str = Field(min_length=1)
    messages: list[Message] = Field(min_length=1)
    tools: list[ToolDef] | None = None
    tool_choice: ToolChoice | None = None
    parallel_tool_calls: bool | None = None
    stream: bool | None = None
    stream_options: StreamOptions | None = None
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    # Not OpenAI's: per-turn caps by role name (e.g. {"reasoner": 32}); max_completion_tokens bounds their sum.
    role_max_tokens: dict[str, Annotated[int, Field(ge=1)]] | None = None
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    top_p: float | None = Field(default=None, gt=0.0, le=1.0)
    seed: int | None = Field(default=None, ge=-(2**63), le=2**63 - 1)
    stop: str | list[str] | None = None
    n: int | None = Field(default=None, ge=1)
    logprobs: bool | None = None
    top_logprobs: int | None = Field(default=None, ge=0, le=20)
    frequency_penalty: float | None = Field(default=None, ge=-2.0, le=2.0)
    presence_penalty: float | None = Field(default=None, ge=-2.0, le=2.0)
    logit_bias: dict[str, int] | None = None
    response_format: ResponseFormat | None = None
    user: str | None = None
    metadata: dict[str, str] | None = None
    store: bool | None = None
    service_tier: str | None = None
    safety_identifier: str | None = None
    prompt_cache_key: str | None = None
    reasoning_effort: str | None = None
    verbosity: str | None = None

    def message_dicts(self) -> list[dict[str, Any]]:
        """The messages as plain OpenAI dicts (what `mor.agent.messages_to_trajectory` reads)."""
        return [message.model_dump(exclude_none=True) for message in self.messages]

    def tool_dicts(self) -> list[dict[str, Any]]:
        """The tools as plain OpenAI dicts."""
        return [tool.model_dump(exclude_none=True) for tool in self.tools or []]


_REQUEST = TypeAdapter(ChatRequest)


def _where(loc: tuple[Any, ...]) -> str:
    """`messages[2].content` from pydantic's location tuple (union branch tags, which start with '=', dropped)."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif isinstance(part, str) and part.startswith("="):
            continue
        else:
            out += f".{part}" if out else str(part)
    return out or "body"


def _shown(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _validation_error(error: ValidationError) -> APIError:
    problems: list[str] = []
    params: list[str] = []
    seen: set[str] = set()
    for item in error.errors(include_url=False):
        where = _where(tuple(item.get("loc", ())))
        kind = item.get("type", "")
        if kind == "extra_forbidden":
            line = f"{where}: unrecognized request argument; remove it (see the OpenAI chat-completions fields)"
        elif kind == "missing":
            line = f"{where}: required field is missing; add it"
        else:
            message = str(item.get("msg", "is invalid"))
            line = f"{where}: got {_shown(item.get('input'))}, {message[:1].lower()}{message[1:]}"
        if line in seen:
            continue
        seen.add(line)
        problems.append(line)
        params.append(where)
    shown = problems[:_MAX_ERRORS]
    more = len(problems) - len(shown)
    message = "; ".join(shown) + (f"; and {more} more" if more > 0 else "")
    return APIError(400, message, param=params[0] if params else None, code="invalid_request")


def parse_chat_request(body: bytes) -> ChatRequest:
    """Parse and validate a request body; raises `APIError` (400) naming every bad field."""
    try:
        data = json.loads(body)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, bad UTF-8, huge integers, deep nesting
        position = f" at line {exc.lineno} column {exc.colno}" if isinstance(exc, json.JSONDecodeError) else ""
        raise APIError(
            400,
            f"body: not valid JSON{position} ({exc.__class__.__name__}); send a JSON object with model and messages",
            code="invalid_json",
        ) from None
    try:
        json.dumps(data, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError as exc:
        bad = exc.object[exc.start : exc.end].encode("unicode_escape").decode()
        raise APIError(
            400,
            f"body: contains {bad!r}, an unpaired UTF-16 surrogate escape that is not valid "
            "Unicode; send valid UTF-8 text",
            code="invalid_json",
        ) from None
    except (ValueError, RecursionError):
        pass  # reported below with the field that holds it
    if not isinstance(data, dict):
        raise APIError(
            400,
            f"body: got a JSON {type(data).__name__}, must be an object with model and messages",
            code="invalid_request",
        )
    try:
        return _REQUEST.validate_python(data)
    except ValidationError as exc:
        raise _validation_error(exc) from None
    except RecursionError:
        raise APIError(400, "body: nested too deeply; flatten the request", code="invalid_request") from None
