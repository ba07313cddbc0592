"""The chat-message readers: OpenAI chat messages (as exported from logs) and LLaMA-Factory's typed-content
messages, on records written here."""

from __future__ import annotations

import json
from pathlib import Path

from mor.data import Trajectory, render_text
from mor.data.readers import Malformed, read
from mor.data.readers.messages import read_openai_messages, read_typed_messages

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather of a city",
        "parameters": {
            "type": "dict",
            "properties": {"city": {"type": "str"}, "unit": {"type": "string", "enum": ["c", "f"]}},
            "required": ["city"],
        },
    },
}


def _split(out: list[Trajectory | Malformed]) -> tuple[list[Trajectory], list[Malformed]]:
    trajectories = [t for t in out if isinstance(t, Trajectory)]
    for trajectory in trajectories:
        render_text(trajectory)
    return trajectories, [m for m in out if isinstance(m, Malformed)]


def _jsonl(path: Path, records: list[object]) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records))
    return path


def _call(call_id: str, city: str) -> dict[str, object]:
    return {
        "id": call_id,
        "type": "function",
        "function": {"name": "get_weather", "arguments": json.dumps({"city": city})},
    }


OPENAI_CHAT = {
    "messages": [
        {"role": "system", "content": "You are a weather assistant."},
        {"role": "user", "content": [{"type": "text", "text": "Weather in Rome and Oslo?"}]},
        {
            "role": "assistant",
            "content": "I will look both up.",
            "tool_calls": [_call("toolu_a", "Rome"), _call("toolu_b", "Oslo")],
        },
        # results out of order: matched by tool_call_id
        {"role": "tool", "tool_call_id": "toolu_b", "content": '{"temp": 3}'},
        {"role": "tool", "tool_call_id": "toolu_a", "content": '{"temp": 24}'},
        {"role": "assistant", "content": "Rome is 24°C, Oslo 3°C."},
    ],
    "tools": [WEATHER],
}


def test_openai_messages_with_parallel_calls(tmp_path: Path) -> None:
    path = _jsonl(tmp_path / "log.jsonl", [OPENAI_CHAT])
    [trajectory], malformed = _split(list(read_openai_messages(path)))
    assert malformed == []
    assert trajectory.id == "openai_messages-log-1"
    assert [turn.role for turn in trajectory.turns] == [
        "system",
        "user",
        "reasoner",
        "executor",
        "observation",
        "observation",
        "reasoner",
        "summarizer",
    ]
    assert trajectory.query == "Weather in Rome and Oslo?"
    assert (trajectory.turns[2].thought, trajectory.turns[2].next_role) == ("I will look both up.", "executor")
    assert [(c.arguments, c.id) for c in trajectory.calls] == [
        ({"city": "Rome"}, "call_1"),
        ({"city": "Oslo"}, "call_2"),
    ]
    assert [(t.call_id, t.content) for t in trajectory.turns[4:6]] == [
        ("call_2", '{"temp": 3}'),
        ("call_1", '{"temp": 24}'),
    ]
    assert (trajectory.turns[6].thought, trajectory.turns[6].next_role) == (None, "summarizer")
    assert trajectory.answer == "Rome is 24°C, Oslo 3°C."
    assert trajectory.tools[0].parameters == {
        "type": "object",
        "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["c", "f"]}},
        "required": ["city"],
    }
    assert trajectory.metadata.source == "openai_messages"
    assert trajectory.metadata.origin == f"{path}:line 1"
    assert trajectory.metadata.missing == ["thought"]


def test_openai_reasoning_content_is_the_thought_and_legacy_function_calls_read(tmp_path: Path) -> None:
    reasoning = {
        "messages": [
            {"role": "user", "content": "Weather in Rome?"},
            {
                "role": "assistant",
                "content": None,
                "reasoning_content": "Need the weather.",
                "tool_calls": [_call("x", "Rome")],
            },
            {"role": "tool", "content": '{"temp": 24}'},  # no tool_call_id: the open call
            {"role": "assistant", "content": "24°C.", "reasoning": "Report it."},
        ],
        "tools": [WEATHER],
    }
    legacy = {
        "messages": [
            {"role": "developer", "content": "Be terse."},
            {"role": "user", "content": "Weather in Oslo?"},
            {
                "role": "assistant",
                "content": None,
                "function_call": {"name": "get_weather", "arguments": '{"city": "Oslo"}'},
            },
            {"role": "function", "name": "get_weather", "content": '{"temp": 3}'},
            {"role": "assistant", "content": "3°C."},
        ],
        "functions": [WEATHER["function"]],
    }
    path = tmp_path / "log.json"
    path.write_text(json.dumps([reasoning, legacy]))
    (with_thoughts, old), malformed = _split(list(read("openai_messages", path)))
    assert malformed == []
    assert [t.thought for t in with_thoughts.turns if t.role == "reasoner"] == ["Need the weather.", "Report it."]
    assert with_thoughts.turns[3].call_id == "call_1"
    assert with_thoughts.metadata.missing == []
    assert old.turns[0].content == "Be terse."
    assert [(c.name, c.arguments, c.id) for c in old.calls] == [("get_weather", {"city": "Oslo"}, "call_1")]
    assert old.turns[4].call_id == "call_1"
    assert old.tools[0].name == "get_weather"
    assert old.metadata.origin == f"{path}:index 1"


def test_openai_malformed_records_are_reported_and_reading_goes_on(tmp_path: Path) -> None:
    user = {"role": "user", "content": "Hi"}
    path = _jsonl(
        tmp_path / "mixed.jsonl",
        [
            OPENAI_CHAT,
            "[not json",
            {"messages": [user, {"role": "bot", "content": "Hello"}]},
            {"messages": [user, {"role": "tool", "content": "{}"}]},
            {
                "messages": [
                    user,
                    {"role": "assistant", "tool_calls": [_call("a", "Rome")]},
                    {"role": "tool", "tool_call_id": "b", "content": "{}"},
                ]
            },
            {
                "messages": [
                    user,
                    {"role": "assistant", "tool_calls": [{"function": {"name": "get_weather", "arguments": "{city"}}]},
                ]
            },
            {"messages": [{"role": "assistant", "content": "Hello"}]},
            {"messages": [user, {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]},
            ["a", "list"],
            OPENAI_CHAT,
        ],
    )
    trajectories, malformed = _split(list(read_openai_messages(path)))
    assert [t.metadata.origin for t in trajectories] == [f"{path}:line 1", f"{path}:line 10"]
    assert [(m.source, m.position) for m in malformed] == [("openai_messages", f"line {n}") for n in range(2, 10)]
    assert [m.reason for m in malformed][1:] == [
        "messages[1].role: got 'bot', expected system, developer, user, assistant or tool",
        "messages[1]: a tool result (observation) with no call before it",
        "messages[2]: tool_call_id 'b' answers no call before it",
        "messages[1]: arguments of get_weather are not JSON: '{city'",
        "no user message",
        "messages[1].content[0]: got part type 'image_url'; only text parts are read",
        "got list, expected an object with 'messages'",
    ]
    assert malformed[0].reason.startswith("not valid JSON")


def _text(value: str, key: str = "value") -> dict[str, str]:
    return {"type": "text", key: value}


def _tool_call(city: str) -> dict[str, str]:
    return {"type": "tool_call", "value": json.dumps({"name": "get_weather", "arguments": {"city": city}})}


TYPED_CHAT = {
    "messages": [
        {"role": "system", "content": [_text("You are a weather assistant.")], "loss_weight": 0.0},
        {"role": "user", "content": [_text("Weather in Rome and Oslo?")], "loss_weight": 0.0},
        {
            "role": "assistant",
            "content": [
                {"type": "reasoning", "value": "Two cities: two calls."},
                _tool_call("Rome"),
                _tool_call("Oslo"),
            ],
            "loss_weight": 1.0,
        },
        {"role": "tool", "content": [_text('{"temp": 24}')], "loss_weight": 0.0},
        {"role": "tool", "content": [_text('{"temp": 3}', key="text")], "loss_weight": 0.0},
        {
            "role": "assistant",
            "content": [{"type": "reasoning", "value": "Both known."}, _text("Rome 24°C, "), _text("Oslo 3°C.")],
            "loss_weight": 1.0,
        },
    ],
    "tools": json.dumps([WEATHER["function"]]),
}


def test_typed_messages_reasoning_parts_are_thoughts(tmp_path: Path) -> None:
    path = _jsonl(tmp_path / "typed.jsonl", [TYPED_CHAT])
    [trajectory], malformed = _split(list(read_typed_messages(path)))
    assert malformed == []
    assert [turn.role for turn in trajectory.turns] == [
        "system",
        "user",
        "reasoner",
        "executor",
        "observation",
        "observation",
        "reasoner",
        "summarizer",
    ]
    assert [(t.thought, t.next_role) for t in trajectory.turns if t.role == "reasoner"] == [
        ("Two cities: two calls.", "executor"),
        ("Both known.", "summarizer"),
    ]
    assert [(c.arguments["city"], c.id) for c in trajectory.calls] == [("Rome", "call_1"), ("Oslo", "call_2")]
    assert [(t.call_id, t.content) for t in trajectory.turns[4:6]] == [
        ("call_1", '{"temp": 24}'),
        ("call_2", '{"temp": 3}'),
    ]
    assert trajectory.answer == "Rome 24°C, Oslo 3°C."
    assert trajectory.tools[0].required == ["city"]
    assert trajectory.metadata.source == "typed_messages"
    assert trajectory.metadata.missing == []


def test_typed_messages_malformed_records_are_reported(tmp_path: Path) -> None:
    user = {"role": "user", "content": [_text("Hi")]}
    path = _jsonl(
        tmp_path / "mixed.jsonl",
        [
            TYPED_CHAT,
            {
                "messages": [
                    user,
                    {"role": "assistant", "content": [{"type": "tool_call", "value": "get_weather(Rome)"}]},
                ]
            },
            {
                "messages": [
                    {"role": "user", "content": [{"type": "image_url", "value": "cat.png"}, _text("What is it?")]}
                ]
            },
            {"messages": [user, {"role": "assistant", "content": [{"type": "emoji", "value": ":)"}]}]},
            {"messages": [user, {"role": "tool", "content": [_text("{}")]}]},
            {"messages": [user], "tools": "[{oops"},
            TYPED_CHAT,
        ],
    )
    trajectories, malformed = _split(list(read("typed_messages", path)))
    assert [t.metadata.origin for t in trajectories] == [f"{path}:line 1", f"{path}:line 7"]
    assert [(m.position, m.reason) for m in malformed] == [
        ("line 2", "messages[1].content[0]: the tool_call value is not JSON: 'get_weather(Rome)'"),
        ("line 3", "messages[0].content[0]: image_url parts are not read; trajectories are text only"),
        ("line 4", "messages[1].content[0].type: got 'emoji', expected text, reasoning or tool_call"),
        ("line 5", "messages[1]: a tool result (observation) with no call before it"),
        ("line 6", "tools: not valid JSON (Expecting property name enclosed in double quotes at column 3)"),
    ]
