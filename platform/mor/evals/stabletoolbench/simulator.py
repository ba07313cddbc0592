"""The API simulator behind the virtual API server's cache misses: an LLM that plays the API.

As in the benchmark's virtual server, the model is shown what the documentation says about the API (names,
description, method, parameters, the template of its response), a few earlier responses of the same API from the
cache as examples, and the arguments of the call; it answers with the JSON object the API would return,
`{"error": "", "response": ...}`. A reply that is not JSON is asked for again, a few times, before the call is
answered with an error (errors are never cached).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

from mor.evals.stabletoolbench.data import ApiDoc
from mor.evals.stabletoolbench.llm import LlmEndpoint, chat_completion, message_json

__all__ = ["LlmSimulator", "Simulator", "simulator_messages"]

_SYSTEM = """You stand in for a web API. You are given the documentation of one API of a tool, possibly some \
earlier calls of that API with the responses it gave, and the arguments of a new call. Work out what the API is \
for and what this call asks, then write the response the real API would send back for it.

Reply with one JSON object and nothing else, shaped as
{"error": "", "response": <the API's response>}
Keep "error" empty. Make "response" follow the documented template response (its keys and value types) when \
one is given, filled with plausible, specific and useful content for these arguments (a few hundred words at \
most). Earlier responses show the format to follow; when they are empty or only errors, ignore them and answer \
on your own."""


@runtime_checkable
class Simulator(Protocol):
    """Answers an API call that the cache does not hold."""

    def simulate(
        self,
        doc: ApiDoc,
        arguments: Mapping[str, Any],
        examples: Sequence[tuple[Mapping[str, Any], Mapping[str, Any]]],
    ) -> dict[str, Any]:
        """The API's response object `{"error": str, "response": ...}` to a call with `arguments`."""


def simulator_messages(
    doc: ApiDoc,
    arguments: Mapping[str, Any],
    examples: Sequence[tuple[Mapping[str, Any], Mapping[str, Any]]],
    *,
    max_example_chars: int = 2048,
) -> list[dict[str, str]]:
    """The chat messages that ask the simulator for one call's response."""
    shown: list[dict[str, Any]] = []
    for call_arguments, response in examples:
        candidate = shown + [{"arguments": call_arguments, "response": response}]
        if shown and len(json.dumps(candidate, ensure_ascii=False)) > max_example_chars:
            break
        shown = candidate
    example_text = json.dumps(shown, ensure_ascii=False)[:max_example_chars] if shown else "none"
    user = (
        f"API documentation:\n{json.dumps(doc.to_dict(), ensure_ascii=False)}\n\n"
        f"Earlier calls of this API:\n{example_text}\n\n"
        f"Arguments of this call:\n{json.dumps(dict(arguments), ensure_ascii=False)}"
    )
    return [{"role": "system", "content": _SYSTEM}, {"role": "user", "content": user}]


def _as_response(value: Any) -> dict[str, Any] | None:
    if isinstance(value, dict) and "response" in value:
        error = value.get("error") or ""
        return {"error": error if isinstance(error, str) else json.dumps(error), "response": value["response"]}
    if isinstance(value, (dict, list)):
        return {"error": "", "response": value}
    return None


class LlmSimulator:
    """A simulator served at an OpenAI-compatible endpoint."""

    def __init__(
        self,
        endpoint: LlmEndpoint,
        *,
        attempts: int = 3,
        temperature: float | None = 0.0,
        max_tokens: int | None = 1024,
        json_mode: bool = True,
    ) -> None:
        if attempts < 1:
            raise ValueError(f"attempts: got {attempts}, must be ≥ 1; e.g. attempts=3")
        self.endpoint = endpoint
        self.attempts = attempts
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.json_mode = json_mode

    def simulate(
        self,
        doc: ApiDoc,
        arguments: Mapping[str, Any],
        examples: Sequence[tuple[Mapping[str, Any], Mapping[str, Any]]],
    ) -> dict[str, Any]:
        """Ask the model for the response; an error object after `attempts` replies that are not JSON."""
        messages = simulator_messages(doc, arguments, examples)
        last = ""
        for _ in range(self.attempts):
            message = chat_completion(
                self.endpoint,
                messages,
                temperature=self.temperature,
                max_tokens=self.max_tokens,
                response_format={"type": "json_object"} if self.json_mode else None,
            )
            last = str(message.get("content") or "")
            response = _as_response(message_json(last))
            if response is not None:
                return response
        return {
            "error": f"the API simulator gave no JSON response after {self.attempts} attempts "
            f"(last reply: {last[:120]!r})",
            "response": "",
        }
