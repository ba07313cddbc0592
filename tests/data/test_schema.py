from __future__ import annotations

import pytest
from pydantic import ValidationError

from mor.data.schema import Tool, ToolCall, Trajectory, TrajectoryMeta, Turn

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather in a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


def test_tool_round_trips_through_the_openai_form() -> None:
    tool = Tool.from_openai(WEATHER)
    assert tool.name == "get_weather"
    assert tool.required == ["city"]
    assert list(tool.properties) == ["city"]
    assert tool.to_openai() == WEATHER
    assert Tool.from_openai(WEATHER["function"]) == tool


def test_tool_from_openai_rejects_an_entry_without_a_function() -> None:
    with pytest.raises(ValueError, match="expected"):
        Tool.from_openai({"type": "retrieval"})


def test_turn_carries_one_payload() -> None:
    with pytest.raises(ValidationError, match="one payload"):
        Turn(role="executor", content="x", calls=[ToolCall(name="f")])
    with pytest.raises(ValidationError, match="add next_role"):
        Turn(role="reasoner", thought="hmm")
    with pytest.raises(ValidationError, match="context turn"):
        Turn(role="user", next_role="executor")


def test_trajectory_views() -> None:
    call = ToolCall(name="get_weather", arguments={"city": "Paris"}, id="call_1")
    trajectory = Trajectory(
        id="t",
        tools=[Tool.from_openai(WEATHER)],
        turns=[
            Turn(role="user", content="Weather in Paris?"),
            Turn(role="reasoner", thought="Look it up.", next_role="executor"),
            Turn(role="executor", calls=[call]),
            Turn(role="observation", content='{"t": 20}', call_id="call_1"),
            Turn(role="reasoner", next_role="summarizer"),
            Turn(role="summarizer", content="It is 20 degrees."),
        ],
        metadata=TrajectoryMeta(source="test", split="test", answer_contains=["20"], extra_key=1),
    )
    assert trajectory.query == "Weather in Paris?"
    assert trajectory.calls == [call]
    assert trajectory.answer == "It is 20 degrees."
    assert trajectory.tool("get_weather") is not None and trajectory.tool("nope") is None
    assert trajectory.metadata.model_extra == {"extra_key": 1}
    assert call.key() == ToolCall(name="get_weather", arguments={"city": "Paris"}).key()


def test_sources_registry() -> None:
    from mor.data.sources import SourceData, read_source, register_source, source_names

    assert "synthetic" in source_names()
    data = read_source("synthetic", {"tools": 6, "trajectories": 20, "seed": 1})
    assert len(data.train) + len(data.test) == 20 and len(data.tools) == 6
    register_source("tiny_test_source", lambda **options: SourceData(train=[]))
    assert read_source("tiny_test_source").train == []
    with pytest.raises(ValueError, match="known sources"):
        read_source("nope")
