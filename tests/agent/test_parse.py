from __future__ import annotations

from mor.agent import ParseFailure, parse_calls, parse_reasoner
from mor.data import Tool, ToolCall

ROLES = ["executor", "summarizer"]
TOOLS = [Tool(name="get_weather"), Tool(name="add_numbers")]


def test_reasoner_output() -> None:
    assert parse_reasoner("First I will call get_weather. Next: executor<|end|>", ROLES) == (
        "First I will call get_weather.",
        "executor",
    )
    assert parse_reasoner("Next: summarizer", ROLES) == (None, "summarizer")
    assert parse_reasoner("Done. Next: summarizer.", ROLES) == ("Done.", "summarizer")


def test_reasoner_failures() -> None:
    missing = parse_reasoner("I will call get_weather.", ROLES)
    assert isinstance(missing, ParseFailure) and "no 'Next: <role>'" in missing.reason
    unknown = parse_reasoner("Hmm. Next: planner", ROLES)
    assert isinstance(unknown, ParseFailure) and "'planner'" in unknown.reason


def test_calls_one_per_line_or_as_array() -> None:
    one = parse_calls('{"name": "get_weather", "arguments": {"city": "Paris"}}', TOOLS)
    assert one == [ToolCall(name="get_weather", arguments={"city": "Paris"})]
    lines = parse_calls(
        '{"name": "get_weather", "arguments": {"city": "Rome"}}\n'
        '{"name": "add_numbers", "arguments": {"a": 1, "b": 2}}',
        TOOLS,
    )
    assert [c.name for c in lines] == ["get_weather", "add_numbers"]
    array = parse_calls('[{"name": "add_numbers", "arguments": "{\\"a\\": 1, \\"b\\": 2}"}]', TOOLS)
    assert array == [ToolCall(name="add_numbers", arguments={"a": 1, "b": 2})]
    pretty = parse_calls('{\n  "name": "get_weather",\n  "arguments": {"city": "Oslo"}\n}', TOOLS)
    assert pretty == [ToolCall(name="get_weather", arguments={"city": "Oslo"})]


def test_bad_calls_are_failures_not_exceptions() -> None:
    cases = {
        '{"name": "get_weather", "arguments": {"city": "Paris"': "not valid JSON",
        '{"name": "teleport", "arguments": {}}': "unknown function 'teleport'",
        '{"arguments": {}}': "without a function name",
        '{"name": "get_weather", "arguments": [1]}': "must be a JSON object",
        '"get_weather"': "must be a JSON object",
        "": "no call",
        '{"name": "add_numbers", "arguments": "{bad"}': "not valid JSON",
    }
    for text, reason in cases.items():
        result = parse_calls(text, TOOLS)
        assert isinstance(result, ParseFailure) and reason in result.reason, (text, result)
