"""The OpenAI-compatible client used by the simulator and the judge, against a real HTTP server."""

from __future__ import annotations

from collections.abc import Callable

import openai
import pytest

from mor.evals.stabletoolbench import LlmEndpoint, LlmError, chat_completion
from mor.evals.stabletoolbench.llm import message_json, tool_call_arguments

from ._fakes import FakeChatServer, Reply, judge_message


def test_the_fake_endpoint_speaks_the_protocol_of_the_official_client(
    fake_llm: Callable[[Reply], FakeChatServer],
) -> None:
    server = fake_llm(lambda body: judge_message("Solved", "fine"))
    client = openai.OpenAI(base_url=server.url, api_key="k")
    completion = client.chat.completions.create(model="judge", messages=[{"role": "user", "content": "hi"}])
    call = completion.choices[0].message.tool_calls[0]
    assert call.function.name == "check_answer_status"
    assert call.function.arguments == '{"answer_status": "Solved", "reason": "fine"}'


def test_chat_completion_sends_the_request_and_returns_the_message(
    fake_llm: Callable[[Reply], FakeChatServer],
) -> None:
    server = fake_llm(lambda body: "pong")
    tool = {"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {}}}}
    message = chat_completion(
        LlmEndpoint(server.url, "sim-model", api_key="secret"),
        [{"role": "user", "content": "ping"}],
        tools=[tool],
        tool_choice={"type": "function", "function": {"name": "f"}},
        temperature=0.0,
        response_format={"type": "json_object"},
        max_tokens=9,
    )
    assert message == {"role": "assistant", "content": "pong"}
    [request] = server.requests
    assert request == {
        "model": "sim-model",
        "messages": [{"role": "user", "content": "ping"}],
        "tools": [tool],
        "tool_choice": {"type": "function", "function": {"name": "f"}},
        "temperature": 0.0,
        "response_format": {"type": "json_object"},
        "max_tokens": 9,
    }
    assert server.headers[0]["Authorization"] == "Bearer secret"


def test_http_errors_and_dead_endpoints_raise_naming_the_url(fake_llm: Callable[[Reply], FakeChatServer]) -> None:
    server = fake_llm(lambda body: {"__status__": 503})
    with pytest.raises(LlmError, match=r"/v1/chat/completions: HTTP 503 for model 'm'"):
        chat_completion(LlmEndpoint(server.url, "m"), [{"role": "user", "content": "x"}])
    server.stop()
    with pytest.raises(LlmError, match=r"request failed .*check the endpoint's base_url"):
        chat_completion(LlmEndpoint(server.url, "m", timeout_s=2), [{"role": "user", "content": "x"}])


def test_message_json_finds_json_in_plain_fenced_or_wrapped_text() -> None:
    assert message_json('{"a": 1}') == {"a": 1}
    assert message_json('Here:\n```json\n{"a": 2}\n```') == {"a": 2}
    assert message_json('The result is {"a": 3} as asked.') == {"a": 3}
    assert message_json("no json here") is None
    assert message_json(None) is None


def test_tool_call_arguments_decodes_the_named_call() -> None:
    message = judge_message("Unsure", "hmm")
    assert tool_call_arguments(message, "check_answer_status") == {"answer_status": "Unsure", "reason": "hmm"}
    assert tool_call_arguments(message, "other") is None
    broken = {"tool_calls": [{"function": {"name": "f", "arguments": "{oops"}}]}
    assert tool_call_arguments(broken, "f") is None
