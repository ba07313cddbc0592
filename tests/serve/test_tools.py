"""Tools and tool_choice: invalid JSON Schemas are 400s, choices resolve to who may act this turn."""

from __future__ import annotations

import json

import pytest

from mor.data import Tool, ToolCall
from mor.serve.errors import APIError
from mor.serve.protocol import parse_chat_request
from mor.serve.tools import check_calls, plan_tools

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
CLOCK = {"type": "function", "function": {"name": "get_time"}}


def _plan(**fields: object):
    body = {"model": "m", "messages": [{"role": "user", "content": "x"}], **fields}
    return plan_tools(parse_chat_request(json.dumps(body).encode()), has_executor=True, has_summarizer=True)


def test_auto_lets_the_reasoner_choose() -> None:
    plan = _plan(tools=[WEATHER, CLOCK])
    assert [t.name for t in plan.callable] == ["get_weather", "get_time"]
    assert plan.executor_allowed and plan.summarizer_allowed and not plan.executor_required and plan.parallel
    assert plan.tools[1].parameters == {"type": "object", "properties": {}}


@pytest.mark.parametrize(
    "choice,callable_names,required,summarizer",
    [
        ("none", [], False, True),
        ("required", ["get_weather", "get_time"], True, False),
        ({"type": "function", "function": {"name": "get_time"}}, ["get_time"], True, False),
        (
            {
                "type": "allowed_tools",
                "allowed_tools": {"mode": "auto", "tools": [{"type": "function", "function": {"name": "get_time"}}]},
            },
            ["get_time"],
            False,
            True,
        ),
    ],
)
def test_tool_choice(choice: object, callable_names: list[str], required: bool, summarizer: bool) -> None:
    plan = _plan(tools=[WEATHER, CLOCK], tool_choice=choice, parallel_tool_calls=False)
    assert [t.name for t in plan.callable] == callable_names
    assert plan.executor_required is required and plan.summarizer_allowed is summarizer
    assert plan.executor_allowed is bool(callable_names) and not plan.parallel
    assert len(plan.tools) == 2  # every tool is still shown to the model


@pytest.mark.parametrize(
    "fields,fragment,code",
    [
        (
            {"tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "objekt"}}}]},
            "tools[0].function.parameters['type']: not a valid JSON Schema",
            "invalid_tool_schema",
        ),
        (
            {
                "tools": [
                    {
                        "type": "function",
                        "function": {
                            "name": "f",
                            "parameters": {"type": "object", "properties": {"a": {"minimum": "zero"}}},
                        },
                    }
                ]
            },
            "tools[0].function.parameters['properties']['a']['minimum']: not a valid JSON Schema",
            "invalid_tool_schema",
        ),
        (
            {"tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "string"}}}]},
            "tools[0].function.parameters.type: got 'string', must be 'object'",
            "invalid_tool_schema",
        ),
        ({"tools": [WEATHER, WEATHER]}, "tools[1].function.name: 'get_weather' is offered twice", "invalid_request"),
        (
            {"tools": [WEATHER], "tool_choice": {"type": "function", "function": {"name": "nope"}}},
            "tool_choice.function.name: got 'nope', which is not among the tools ['get_weather']",
            "invalid_tool_choice",
        ),
        (
            {"tool_choice": "required"},
            "tool_choice: requires a tool call but the request offers no tools",
            "invalid_tool_choice",
        ),
    ],
)
def test_bad_tools_are_400s(fields: dict, fragment: str, code: str) -> None:
    with pytest.raises(APIError) as caught:
        _plan(**fields)
    assert caught.value.status == 400 and fragment in caught.value.message and caught.value.code == code


def test_check_calls_validates_against_the_schema() -> None:
    tool = Tool.from_openai(WEATHER)
    assert check_calls([ToolCall(name="get_weather", arguments={"city": "Oslo"})], [tool]) is None
    assert "'city' is a required property" in check_calls([ToolCall(name="get_weather", arguments={})], [tool])
    assert "not among" in check_calls([ToolCall(name="other", arguments={})], [tool])
