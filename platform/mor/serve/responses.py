"""The response side: chat completions, stream chunks (server-sent events) and the model list, in OpenAI's shapes.

The reasoner's thought travels in `reasoning_content` of the message (or of the first delta), a field OpenAI
clients keep as an extra attribute and otherwise ignore.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from mor.data.schema import ToolCall

__all__ = ["ResponseIds", "completion", "chunk", "done_event", "error_event", "model_list", "sse", "tool_calls"]


class ResponseIds:
    """The id, creation time and model of one response (shared by all its chunks)."""

    def __init__(self, model: str) -> None:
        self.id = f"chatcmpl-{uuid.uuid4().hex}"
        self.created = int(time.time())
        self.model = model


def tool_calls(calls: list[ToolCall], *, with_index: bool = False) -> list[dict[str, Any]]:
    """OpenAI `tool_calls` entries (stream deltas carry an `index`)."""
    out = []
    for index, call in enumerate(calls):
        entry: dict[str, Any] = {
            "id": call.id,
            "type": "function",
            "function": {"name": call.name, "arguments": json.dumps(call.arguments, ensure_ascii=False)},
        }
        if with_index:
            entry = {"index": index, **entry}
        out.append(entry)
    return out


def completion(
    ids: ResponseIds,
    *,
    content: str | None,
    thought: str | None,
    calls: list[ToolCall],
    finish_reason: str,
    usage: dict[str, Any],
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A whole `chat.completion` object."""
    message: dict[str, Any] = {"role": "assistant", "content": content, "refusal": None, "reasoning_content": thought}
    if calls:
        message["tool_calls"] = tool_calls(calls)
    body: dict[str, Any] = {
        "id": ids.id,
        "object": "chat.completion",
        "created": ids.created,
        "model": ids.model,
        "choices": [{"index": 0, "message": message, "finish_reason": finish_reason, "logprobs": None}],
        "usage": usage,
        "system_fingerprint": None,
    }
    if extra:
        body["mor"] = extra
    return body


def chunk(
    ids: ResponseIds,
    delta: dict[str, Any],
    *,
    finish_reason: str | None = None,
    usage: dict[str, Any] | None = None,
    with_choice: bool = True,
) -> dict[str, Any]:
    """One `chat.completion.chunk`; the usage chunk has no choices."""
    body: dict[str, Any] = {
        "id": ids.id,
        "object": "chat.completion.chunk",
        "created": ids.created,
        "model": ids.model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason, "logprobs": None}]
        if with_choice
        else [],
    }
    if usage is not None:
        body["usage"] = usage
    return body


def sse(payload: dict[str, Any]) -> bytes:
    """One server-sent event carrying a JSON payload."""
    return f"data: {json.dumps(payload, ensure_ascii=False)}\n\n".encode()


def done_event() -> bytes:
    """The event that ends an OpenAI stream."""
    return b"data: [DONE]\n\n"


def error_event(body: dict[str, Any]) -> bytes:
    """An error after the stream started (the status line was already sent)."""
    return sse(body)


def model_list(model: str, created: int) -> dict[str, Any]:
    """`GET /v1/models`."""
    return {"object": "list", "data": [{"id": model, "object": "model", "created": created, "owned_by": "mor"}]}
