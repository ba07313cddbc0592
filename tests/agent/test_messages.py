from __future__ import annotations

import json

import pytest

from mor.agent import messages_to_trajectory, tool_calls_message
from mor.data import ToolCall

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
        },
    }
]


def test_conversation_to_turns() -> None:
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Weather in Paris?"},
        {
            "role": "assistant",
            "content": "First I will call get_weather.",
            "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": '{"temperature": 20}'},
        {"role": "assistant", "content": "It is 20 degrees."},
        {"role": "user", "content": [{"type": "text", "text": "And "}, {"type": "text", "text": "Rome?"}]},
    ]
    trajectory = messages_to_trajectory(messages, TOOLS)
    assert [(t.role, t.content, t.thought, t.next_role) for t in trajectory.turns] == [
        ("system", "Be brief.", None, None),
        ("user", "Weather in Paris?", None, None),
        ("reasoner", None, "First I will call get_weather.", "executor"),
        ("executor", None, None, None),
        ("observation", '{"temperature": 20}', None, None),
        ("reasoner", None, None, "summarizer"),
        ("summarizer", "It is 20 degrees.", None, None),
        ("user", "And Rome?", None, None),
    ]
    assert trajectory.turns[3].calls == [ToolCall(name="get_weather", arguments={"city": "Paris"}, id="c1")]
    assert trajectory.turns[4].call_id == "c1"
    assert trajectory.tools[0].name == "get_weather" and trajectory.metadata.source == "openai-messages"


def test_action_message_round_trips() -> None:
    message = tool_calls_message(
        "First I will call get_weather.", [ToolCall(name="get_weather", arguments={"city": "Oslo"}, id="call_1")]
    )
    assert message == {
        "role": "assistant",
        "content": "First I will call get_weather.",
        "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'}}
        ],
    }
    back = messages_to_trajectory([{"role": "user", "content": "x"}, message])
    assert back.turns[2].calls[0].arguments == {"city": "Oslo"}
    assert tool_calls_message(None, [], content="Done.") == {"role": "assistant", "content": "Done."}


def test_bad_messages_name_the_place() -> None:
    bad = {"role": "assistant", "tool_calls": [{"function": {"name": "f", "arguments": "{oops"}}]}
    with pytest.raises(ValueError, match=r"messages\[0\].tool_calls\[0\]: arguments of f are not a JSON object"):
        messages_to_trajectory([bad])
    with pytest.raises(ValueError, match=r"messages\[0\].role: got 'robot'"):
        messages_to_trajectory([{"role": "robot", "content": json.dumps({})}])
