"""Request parsing: every bad field named at once, with its path and value, in a 400 of the OpenAI shape."""

from __future__ import annotations

import json

import pytest

from mor.serve.errors import APIError
from mor.serve.protocol import AssistantMessage, NamedToolChoice, parse_chat_request


def _parse(body: object) -> object:
    return parse_chat_request(json.dumps(body).encode())


def _error(body: object | bytes) -> APIError:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    with pytest.raises(APIError) as caught:
        parse_chat_request(raw)
    assert caught.value.status == 400
    return caught.value


def test_a_full_openai_request_parses() -> None:
    request = _parse(
        {
            "model": "m",
            "messages": [
                {"role": "system", "content": "be brief"},
                {"role": "user", "content": [{"type": "text", "text": "hi"}]},
                {
                    "role": "assistant",
                    "content": None,
                    "refusal": None,
                    "annotations": [],
                    "reasoning_content": "I will call f.",
                    "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}],
                },
                {"role": "tool", "tool_call_id": "c1", "content": '{"ok": true}'},
            ],
            "tools": [
                {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}, "strict": True}}
            ],
            "tool_choice": {"type": "function", "function": {"name": "f"}},
            "parallel_tool_calls": False,
            "stream": True,
            "stream_options": {"include_usage": True},
            "temperature": 0,
            "top_p": 1,
            "max_completion_tokens": 20,
            "seed": 3,
            "stop": ["x"],
            "user": "u",
            "metadata": {"k": "v"},
        }
    )
    assert isinstance(request.tool_choice, NamedToolChoice) and request.tool_choice.function.name == "f"
    assert isinstance(request.messages[2], AssistantMessage) and request.temperature == 0.0
    assert request.message_dicts()[2]["reasoning_content"] == "I will call f."
    assert request.tool_dicts()[0]["function"]["name"] == "f"


@pytest.mark.parametrize(
    "body,fragments,param",
    [
        (b"{", ["body: not valid JSON at line 1 column 2"], None),
        (b"\xff\xfe", ["body: not valid JSON"], None),
        (b"[" * 50_000, ["not valid JSON (RecursionError)"], None),
        (
            b'{"model": "m", "messages": [{"role": "user", "content": "x"}], "seed": ' + b"9" * 5000 + b"}",
            ["not valid JSON"],
            None,
        ),
        ([], ["got a JSON list, must be an object"], None),
        ({"messages": [{"role": "user", "content": "x"}]}, ["model: required field is missing"], "model"),
        ({"model": "m", "messages": []}, ["messages: got []", "at least 1 item"], "messages"),
        (
            {"model": 1, "messages": [{"role": "bob", "content": "x"}], "foo": 1, "temperature": "hot"},
            [
                "model: got 1, input should be a valid string",
                'messages[0]: got {"role": "bob", "content": "x"}, must have a role of system',
                "temperature: got 'hot'",
                "foo: unrecognized request argument",
            ],
            "model",
        ),
        (
            {
                "model": "m",
                "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "u"}}]}],
            },
            ["messages[0].content[0].type: got 'image_url', input should be 'text'"],
            "messages[0].content[0].type",
        ),
        (
            {"model": "m", "messages": [{"role": "tool", "content": "x"}]},
            ["messages[0].tool_call_id: required field is missing"],
            "messages[0].tool_call_id",
        ),
        (
            {
                "model": "m",
                "messages": [
                    {"role": "assistant", "tool_calls": [{"id": "a", "function": {"name": "f", "arguments": {}}}]}
                ],
            },
            ["messages[0].tool_calls[0].function.arguments: got {}, input should be a valid string"],
            None,
        ),
        (
            {
                "model": "m",
                "messages": [{"role": "user", "content": "x"}],
                "tools": [{"type": "function", "function": {"name": "bad name"}}],
            },
            ["tools[0].function.name: got 'bad name', string should match pattern"],
            "tools[0].function.name",
        ),
        (
            {"model": "m", "messages": [{"role": "user", "content": "x"}], "tool_choice": "maybe"},
            ["tool_choice: got 'maybe', input should be 'none', 'auto' or 'required'"],
            "tool_choice",
        ),
        (
            {"model": "m", "messages": [{"role": "user", "content": "x"}], "tool_choice": 3},
            ["tool_choice: got 3, must be 'none', 'auto', 'required' or"],
            "tool_choice",
        ),
        (
            {"model": "m", "messages": [{"role": "user", "content": "x"}], "max_tokens": 0, "n": True, "top_p": 0},
            ["max_tokens: got 0, input should be greater than or equal to 1", "n: got true", "top_p: got 0"],
            None,
        ),
    ],
)
def test_bad_requests_name_each_field(body: object, fragments: list[str], param: str | None) -> None:
    error = _error(body)
    for fragment in fragments:
        assert fragment in error.message, error.message
    if param is not None:
        assert error.param == param
    assert error.body()["error"]["type"] == "invalid_request_error" and error.body()["error"]["code"]


def test_many_problems_are_summarized() -> None:
    body = {"model": "m", "messages": [{"role": "user", "content": "x"}], **{f"x{i}": i for i in range(10)}}
    assert "and 4 more" in _error(body).message
