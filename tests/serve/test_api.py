"""The HTTP API in process (the real FastAPI app and engine over an untrained MoR model, no Ray): OpenAI shapes with
the official client, tool_choice, streaming, and every kind of bad request answered with a 4xx in OpenAI's error
shape. An untrained model still follows the protocol: the constraints leave it no other way."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import openai
import pytest
from jsonschema import validate
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from .asgi import KEY, MODEL, request

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "maxLength": 12},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            },
            "required": ["city"],
            "additionalProperties": False,
        },
    },
}
ADD = {
    "type": "function",
    "function": {
        "name": "add",
        "parameters": {
            "type": "object",
            "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
            "required": ["a", "b"],
            "additionalProperties": False,
        },
    },
}
USER = [{"role": "user", "content": "What is the weather in Oslo?"}]


def _chat(app: Any, **fields: Any) -> httpx.Response:
    return request(app, "POST", "/v1/chat/completions", body={"model": MODEL, "messages": USER, **fields})


def _assert_error(response: httpx.Response, status: int, *fragments: str, code: str | None = None) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}
    for fragment in fragments:
        assert fragment in body["error"]["message"], body["error"]["message"]
    if code is not None:
        assert body["error"]["code"] == code
    return body["error"]


def test_health_needs_no_key(app: Any) -> None:
    response = request(app, "GET", "/health", key=None)
    assert response.status_code == 200 and response.json()["status"] == "ok" and response.json()["model"] == MODEL


def test_models_need_a_key(app: Any) -> None:
    _assert_error(request(app, "GET", "/v1/models", key=None), 401, "Authorization: missing", code="invalid_api_key")
    _assert_error(request(app, "GET", "/v1/models", key="not-the-key"), 401, "incorrect API key")
    response = request(app, "GET", "/v1/models")
    assert response.status_code == 200 and [m["id"] for m in response.json()["data"]] == [MODEL]
    assert request(app, "GET", f"/v1/models/{MODEL}").json()["id"] == MODEL
    _assert_error(request(app, "GET", "/v1/models/other"), 404, code="model_not_found")


def _check_completion(body: dict, tools: list[dict]) -> ChatCompletion:
    completion = ChatCompletion.model_validate(body)
    choice = completion.choices[0]
    usage = completion.usage
    assert usage is not None and usage.total_tokens == usage.prompt_tokens + usage.completion_tokens > 0
    assert usage.completion_tokens_details is not None
    if choice.finish_reason == "tool_calls":
        by_name = {tool["function"]["name"]: tool["function"].get("parameters", {}) for tool in tools}
        assert choice.message.tool_calls
        for call in choice.message.tool_calls:
            assert call.id.startswith("call_") and call.function.name in by_name
            validate(json.loads(call.function.arguments), by_name[call.function.name])
        assert choice.message.model_extra["reasoning_content"] == choice.message.content
    return completion


@pytest.mark.parametrize(
    "tool_choice,expected",
    [
        (None, {"tool_calls", "stop", "length"}),
        ("none", {"stop", "length"}),
        ("required", {"tool_calls", "length"}),
        ({"type": "function", "function": {"name": "add"}}, {"tool_calls", "length"}),
    ],
)
def test_tool_choice_decides_what_may_come_back(app: Any, tool_choice: Any, expected: set[str]) -> None:
    fields: dict[str, Any] = {"tools": [WEATHER, ADD]}
    if tool_choice is not None:
        fields["tool_choice"] = tool_choice
    response = _chat(app, **fields)
    assert response.status_code == 200, response.text
    completion = _check_completion(response.json(), [WEATHER, ADD])
    choice = completion.choices[0]
    assert choice.finish_reason in expected
    if isinstance(tool_choice, dict) and choice.message.tool_calls:
        assert {call.function.name for call in choice.message.tool_calls} == {"add"}
    if choice.finish_reason != "tool_calls":
        assert not choice.message.tool_calls


def test_parallel_tool_calls_off_gives_one_call(app: Any) -> None:
    response = _chat(app, tools=[WEATHER, ADD], tool_choice="required", parallel_tool_calls=False)
    completion = _check_completion(response.json(), [WEATHER, ADD])
    assert completion.choices[0].finish_reason == "length" or len(completion.choices[0].message.tool_calls) == 1


def test_official_client_round_trip_and_stream(app: Any) -> None:
    async def scenario() -> tuple[ChatCompletion, list[ChatCompletionChunk], ChatCompletion]:
        http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")
        client = openai.AsyncOpenAI(base_url="http://test/v1", api_key=KEY, http_client=http, max_retries=0)
        first = await client.chat.completions.create(
            model=MODEL, messages=USER, tools=[WEATHER], tool_choice="required"
        )
        calls = first.choices[0].message.tool_calls or []
        messages: list[Any] = [*USER, first.choices[0].message]
        messages += [{"role": "tool", "tool_call_id": call.id, "content": '{"temperature": 21}'} for call in calls]
        stream = await client.chat.completions.create(
            model=MODEL,
            messages=messages,
            tools=[WEATHER],
            tool_choice="none",
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = [chunk async for chunk in stream]
        whole = await client.chat.completions.create(
            model=MODEL, messages=messages, tools=[WEATHER], tool_choice="none"
        )
        await http.aclose()
        return first, chunks, whole

    first, chunks, whole = asyncio.run(scenario())
    assert first.choices[0].finish_reason in ("tool_calls", "length") and first.model == MODEL
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    finish = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finish == [whole.choices[0].finish_reason] and finish[0] in ("stop", "length")
    streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert streamed == whole.choices[0].message.content  # greedy: the same answer either way
    assert chunks[-1].usage.completion_tokens == whole.usage.completion_tokens
    assert len({c.id for c in chunks}) == 1


def test_streamed_tool_calls(app: Any) -> None:
    response = _chat(app, tools=[ADD], tool_choice="required", stream=True)
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
    events = [line.removeprefix("data: ") for line in response.text.split("\n\n") if line]
    assert events[-1] == "[DONE]"
    chunks = [ChatCompletionChunk.model_validate(json.loads(event)) for event in events[:-1]]
    finish = chunks[-1].choices[0].finish_reason
    assert finish in ("tool_calls", "length")
    if finish == "tool_calls":
        deltas = [c.choices[0].delta.tool_calls for c in chunks if c.choices[0].delta.tool_calls]
        assert deltas and deltas[0][0].index == 0 and deltas[0][0].function.name == "add"


@pytest.mark.parametrize(
    "fields,status,fragments,code",
    [
        ({"model": "gpt-4o"}, 404, ["model: got 'gpt-4o', this server serves 'tiny-agent'"], "model_not_found"),
        ({"max_tokens": 65}, 400, ["max_tokens: got 65, this server allows at most 64"], "invalid_request"),
        ({"n": 2, "logprobs": True}, 400, ["n: got 2", "logprobs: not supported"], "unsupported_parameter"),
        (
            {"response_format": {"type": "json_object"}},
            400,
            ["response_format.type: got 'json_object'"],
            "unsupported_parameter",
        ),
        (
            {
                "tools": [
                    {
                        "type": "function",
                        "function": {"name": "f", "parameters": {"type": "object", "required": "city"}},
                    }
                ]
            },
            400,
            ["tools[0].function.parameters['required']: not a valid JSON Schema"],
            "invalid_tool_schema",
        ),
        (
            {
                "tools": [
                    {
                        "type": "function",
                        "function": {
                            "name": "f",
                            "parameters": {
                                "type": "object",
                                "properties": {"x": {"type": "array", "uniqueItems": True}},
                            },
                        },
                    }
                ]
            },
            400,
            ["function 'f'", "uniqueItems", "cannot compile this schema"],
            "unsupported_schema",
        ),
        (
            {"messages": [{"role": "user", "content": "many words " * 300}]},
            400,
            ["messages: the conversation takes", "exceeds the context of 512 tokens"],
            "context_length_exceeded",
        ),
        (
            {
                "messages": [
                    {
                        "role": "assistant",
                        "tool_calls": [
                            {"id": "a", "type": "function", "function": {"name": "f", "arguments": "[1, 2]"}}
                        ],
                    }
                ]
            },
            400,
            ["arguments of f must be a JSON object"],
            "invalid_request",
        ),
        (
            {"temperature": "warm", "stream": "yes"},
            400,
            ["temperature: got 'warm'", "stream: got 'yes'"],
            "invalid_request",
        ),
    ],
)
def test_bad_requests_are_4xx_in_openai_shape(
    app: Any, fields: dict, status: int, fragments: list[str], code: str
) -> None:
    body = {"model": MODEL, "messages": USER, **fields}
    _assert_error(request(app, "POST", "/v1/chat/completions", body=body), status, *fragments, code=code)


def test_transport_level_errors(app: Any) -> None:
    _assert_error(
        request(app, "POST", "/v1/chat/completions", raw=b'{"model": "x", "mess'),
        400,
        "body: not valid JSON",
        code="invalid_json",
    )
    _assert_error(
        request(
            app,
            "POST",
            "/v1/chat/completions",
            raw=b"model=x",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        ),
        415,
        "Content-Type: got 'application/x-www-form-urlencoded'",
    )
    big = json.dumps({"model": MODEL, "messages": [{"role": "user", "content": "x" * 30_000}]}).encode()
    _assert_error(request(app, "POST", "/v1/chat/completions", raw=big), 413, "more than the limit of 20000")
    _assert_error(
        request(app, "POST", "/v1/chat/completions", body={"model": MODEL, "messages": USER}, key=None),
        401,
        "Authorization: missing",
    )
    _assert_error(request(app, "GET", "/v1/chat/completions"), 405, "method not allowed")
    _assert_error(request(app, "POST", "/v1/completions", body={}), 404, "no such route", code="not_found")


def test_stop_strings_and_sampling(app: Any) -> None:
    response = _chat(app, tool_choice="none", temperature=1.3, top_p=0.9, seed=5, stop=["e"])
    completion = ChatCompletion.model_validate(response.json())
    again = ChatCompletion.model_validate(
        _chat(app, tool_choice="none", temperature=1.3, top_p=0.9, seed=5, stop=["e"]).json()
    )
    assert "e" not in (completion.choices[0].message.content or "")
    assert completion.choices[0].message.content == again.choices[0].message.content


def test_openapi_document_describes_the_request(app: Any) -> None:
    document = request(app, "GET", "/openapi.json", key=None).json()
    body = document["paths"]["/v1/chat/completions"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert set(body["required"]) == {"model", "messages"} and body["additionalProperties"] is False
    assert "AssistantMessage" in document["components"]["schemas"] and "ToolDef" in document["components"]["schemas"]
    assert request(app, "GET", "/docs", key=None).status_code == 404  # no page that loads scripts from a CDN


def test_after_max_steps_the_summarizer_answers_without_the_reasoner(app: Any) -> None:
    messages: list[dict[str, Any]] = [*USER]
    for n in range(3):  # the runtime of these tests allows 3 reasoner turns per conversation
        messages.append(
            {
                "role": "assistant",
                "content": "Checking.",
                "tool_calls": [
                    {"id": f"c{n}", "type": "function", "function": {"name": "add", "arguments": '{"a": 1, "b": 2}'}}
                ],
            }
        )
        messages.append({"role": "tool", "tool_call_id": f"c{n}", "content": "3"})
    response = _chat(app, messages=messages, tools=[WEATHER, ADD], tool_choice="required")
    completion = ChatCompletion.model_validate(response.json())
    assert completion.choices[0].finish_reason in ("stop", "length") and not completion.choices[0].message.tool_calls
    assert completion.choices[0].message.model_extra["reasoning_content"] is None
    assert completion.usage.completion_tokens_details.reasoning_tokens == 0


def test_every_stream_reports_usage_on_its_last_choice_chunk(app: Any) -> None:
    response = _chat(app, tools=[ADD], stream=True)
    events = [
        json.loads(line.removeprefix("data: "))
        for line in response.text.split("\n\n")
        if line and line != "data: [DONE]"
    ]
    last = ChatCompletionChunk.model_validate(events[-1])
    assert last.choices[0].finish_reason is not None and last.usage is not None and last.usage.total_tokens > 0
