"""A minimal client of an OpenAI-compatible chat-completions endpoint, for the API simulator and the judge.

Plain HTTP (httpx): `POST {base_url}/chat/completions`, where `base_url` follows the openai client's convention
and usually ends in `/v1` (e.g. `http://127.0.0.1:8000/v1`, `https://api.openai.com/v1`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

__all__ = ["LlmEndpoint", "LlmError", "chat_completion", "message_json", "tool_call_arguments"]


class LlmError(RuntimeError):
    """An endpoint that could not be reached or answered with something other than a chat completion."""


@dataclass(frozen=True)
class LlmEndpoint:
    """Where an OpenAI-compatible model is served, and which model to ask."""

    base_url: str
    model: str
    api_key: str | None = None
    timeout_s: float = 120.0

    @property
    def completions_url(self) -> str:
        """The chat-completions URL."""
        return self.base_url.rstrip("/") + "/chat/completions"


def chat_completion(
    endpoint: LlmEndpoint,
    messages: Sequence[Mapping[str, Any]],
    *,
    tools: Sequence[Mapping[str, Any]] | None = None,
    tool_choice: str | Mapping[str, Any] | None = None,
    temperature: float | None = None,
    response_format: Mapping[str, Any] | None = None,
    max_tokens: int | None = None,
) -> dict[str, Any]:
    """The assistant message of one chat completion (`{"role", "content", "tool_calls"?}`)."""
    body: dict[str, Any] = {"model": endpoint.model, "messages": [dict(message) for message in messages]}
    if tools:
        body["tools"] = [dict(tool) for tool in tools]
    if tool_choice is not None:
        body["tool_choice"] = tool_choice
    if temperature is not None:
        body["temperature"] = temperature
    if response_format is not None:
        body["response_format"] = dict(response_format)
    if max_tokens is not None:
        body["max_tokens"] = max_tokens
    headers = {"Authorization": f"Bearer {endpoint.api_key}"} if endpoint.api_key else {}
    try:
        response = httpx.post(endpoint.completions_url, json=body, headers=headers, timeout=endpoint.timeout_s)
    except httpx.HTTPError as error:
        raise LlmError(
            f"{endpoint.completions_url}: request failed ({type(error).__name__}: {error}); check the endpoint's "
            "base_url (e.g. http://127.0.0.1:8000/v1) and that the server is running"
        ) from error
    if response.status_code != 200:
        raise LlmError(
            f"{endpoint.completions_url}: HTTP {response.status_code} for model {endpoint.model!r}: "
            f"{response.text[:300]}"
        )
    try:
        message = response.json()["choices"][0]["message"]
    except (ValueError, KeyError, IndexError, TypeError):
        raise LlmError(
            f"{endpoint.completions_url}: not a chat completion (no choices[0].message): {response.text[:300]}"
        ) from None
    if not isinstance(message, dict):
        raise LlmError(f"{endpoint.completions_url}: choices[0].message is {type(message).__name__}, not an object")
    return message


def tool_call_arguments(message: Mapping[str, Any], name: str) -> dict[str, Any] | None:
    """The decoded arguments of the first call of `name` in an assistant message, or None."""
    for entry in message.get("tool_calls") or []:
        function = entry.get("function") or {}
        if function.get("name") != name:
            continue
        raw = function.get("arguments")
        if isinstance(raw, Mapping):
            return dict(raw)
        try:
            value = json.loads(raw or "")
        except (json.JSONDecodeError, TypeError):
            return None
        return value if isinstance(value, dict) else None
    return None


def message_json(text: str | None) -> Any:
    """The JSON value in a reply's text: the whole text, a ```json fenced block, or the outermost {...}; else None."""
    if not text:
        return None
    candidates = [text.strip()]
    if "```" in text:
        for block in text.split("```")[1::2]:
            candidates.append(block.removeprefix("json").strip())
    start, end = text.find("{"), text.rfind("}")
    if 0 <= start < end:
        candidates.append(text[start : end + 1])
    for candidate in candidates:
        try:
            return json.loads(candidate)
        except json.JSONDecodeError:
            continue
    return None
