"""Verification of trajectories: each rule on hand-built trajectories (what it flags and what it lets through), the
corpus split and its counts, and the readers' output on the shared samples."""

from __future__ import annotations

from typing import Any

import pytest

from mor.data.readers import Malformed, read
from mor.data.schema import Tool, ToolCall, Trajectory, TrajectoryMeta, Turn
from mor.data.verify import CODES, Dropped, Problem, verify, verify_all
from mor_testing import shared_dataset

WEATHER = Tool(
    name="get_weather",
    description="Weather of a city.",
    parameters={
        "type": "object",
        "properties": {
            "city": {"type": "string"},
            "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            "days": {"type": "integer"},
        },
        "required": ["city"],
    },
)
TIME = Tool(name="get_time", parameters={"type": "object", "properties": {"zone": {"type": "string"}}})
SEARCH = Tool(name="search", parameters={"type": "object", "properties": {"query": {"type": "string"}}})
NO_ARGUMENTS = Tool(name="list_agencies")  # properties {}: takes no arguments
ORDER = Tool(
    name="place_order",
    parameters={
        "type": "object",
        "properties": {
            "item": {"type": "string"},
            "count": {"type": "integer"},
            "price": {"type": "number"},
            "express": {"type": "boolean"},
            "note": {"type": ["string", "null"]},
            "tags": {"type": "array", "items": {"type": "string"}},
            "grid": {"type": "array", "items": {"type": "array", "items": {"type": "integer"}}},
            "pair": {"type": "array", "items": [{"type": "string"}, {"type": "number"}]},
            "address": {
                "type": "object",
                "properties": {"street": {"type": "string"}, "zip": {"type": "integer"}},
                "required": ["street"],
            },
            "level": {"type": "integer", "enum": [1, 2]},
            "gift": {"type": "string", "nullable": True},
            "code": {"anyOf": [{"type": "integer"}, {"type": "string", "enum": ["none"]}]},
            "anything": {"description": "no type: not checked"},
            "custom": {"type": "uuid"},
        },
        "required": ["item", "count"],
    },
)
TOOLS = [WEATHER, TIME, SEARCH, NO_ARGUMENTS, ORDER]


def trajectory(
    *calls: ToolCall,
    thought: str | None = None,
    tools: list[Tool] = TOOLS,
    observe: bool = True,
    missing: list[str] | None = None,
) -> Trajectory:
    """user, reasoner (thought) → executor (calls), an observation per call (when `observe`), reasoner → summarizer."""
    numbered = [call if call.id else call.model_copy(update={"id": f"call_{n}"}) for n, call in enumerate(calls, 1)]
    turns = [
        Turn(role="user", content="Help me."),
        Turn(role="reasoner", thought=thought, next_role="executor"),
        Turn(role="executor", calls=numbered),
    ]
    if observe:
        turns += [Turn(role="observation", content="{}", call_id=call.id) for call in numbered]
    turns += [Turn(role="reasoner", next_role="summarizer"), Turn(role="summarizer", content="Done.")]
    return Trajectory(id="t", tools=tools, turns=turns, metadata=TrajectoryMeta(missing=missing or []))


def order(**arguments: Any) -> ToolCall:
    return ToolCall(name="place_order", arguments={"item": "pen", "count": 2, **arguments})


def codes(problems: list[Problem]) -> list[tuple[str, str | None]]:
    return [(problem.code, problem.parameter) for problem in problems]


def test_a_good_trajectory_has_no_problem() -> None:
    call = ToolCall(name="get_weather", arguments={"city": "Paris", "unit": "celsius", "days": 3})
    assert verify(trajectory(call, thought="I will call get_weather for Paris.")) == []


def test_unknown_function_names_the_turn_the_call_and_the_closest_candidate() -> None:
    [problem] = verify(trajectory(ToolCall(name="get_wether", arguments={"city": "Paris"})))
    assert problem.code == "unknown_function"
    assert problem.turn == 2
    assert problem.call == "get_wether"
    assert problem.reason.startswith("turn 2 (executor): call get_wether (call_1): not among the candidate tools")
    assert problem.reason.endswith("closest candidate: get_weather")
    assert str(problem) == problem.reason


def test_unknown_function_when_no_tool_is_offered() -> None:
    [problem] = verify(trajectory(ToolCall(name="get_weather", arguments={"city": "Paris"}), tools=[]))
    assert problem.code == "unknown_function"
    assert "offers no tools" in problem.reason


def test_missing_tools_skips_the_call_rules() -> None:
    call = ToolCall(name="anything", arguments={"x": 1})
    assert verify(trajectory(call, tools=[], missing=["tools"])) == []


def test_missing_required() -> None:
    [problem] = verify(trajectory(ToolCall(name="get_weather", arguments={"unit": "celsius"})))
    assert (problem.code, problem.parameter, problem.call) == ("missing_required", "arguments.city", "get_weather")
    assert problem.reason == "turn 2 (executor): call get_weather (call_1): arguments.city: required, not given"


def test_unknown_parameter_with_a_suggestion() -> None:
    [problem] = verify(trajectory(ToolCall(name="get_weather", arguments={"city": "Paris", "dayz": 2})))
    assert (problem.code, problem.parameter) == ("unknown_parameter", "arguments.dayz")
    assert problem.reason.endswith("not a parameter of the schema (city, unit, days); did you mean days?")


def test_additional_properties_allow_unknown_parameters_and_type_them() -> None:
    open_tool = Tool(
        name="tag", parameters={"type": "object", "properties": {"a": {"type": "string"}}, "additionalProperties": True}
    )
    typed_tool = Tool(
        name="tag",
        parameters={
            "type": "object",
            "properties": {"a": {"type": "string"}},
            "additionalProperties": {"type": "string"},
        },
    )
    assert verify(trajectory(ToolCall(name="tag", arguments={"a": "x", "b": 1}), tools=[open_tool])) == []
    assert verify(trajectory(ToolCall(name="tag", arguments={"a": "x", "b": "y"}), tools=[typed_tool])) == []
    problems = verify(trajectory(ToolCall(name="tag", arguments={"a": "x", "b": 1}), tools=[typed_tool]))
    assert codes(problems) == [("wrong_type", "arguments.b")]


def test_a_schema_without_properties_lists_no_parameter_unknown() -> None:
    free = Tool(name="free", parameters={"type": "object"})
    assert verify(trajectory(ToolCall(name="free", arguments={"x": 1}), tools=[free])) == []


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        ({"count": 3}, []),
        ({"count": 3.0}, []),  # JSON Schema: a number without fraction is an integer
        ({"count": 3.5}, [("wrong_type", "arguments.count")]),
        ({"count": True}, [("wrong_type", "arguments.count")]),  # a bool is not an integer
        ({"count": "3"}, [("wrong_type", "arguments.count")]),
        ({"price": 3}, []),  # an int is a number
        ({"price": 2.5}, []),
        ({"price": False}, [("wrong_type", "arguments.price")]),  # a bool is not a number
        ({"price": "2.5"}, [("wrong_type", "arguments.price")]),
        ({"express": True}, []),
        ({"express": 1}, [("wrong_type", "arguments.express")]),
        ({"item": 5}, [("wrong_type", "arguments.item")]),
        ({"item": None}, [("wrong_type", "arguments.item")]),  # null is not a string
        ({"note": None}, []),  # type: [string, null]
        ({"note": "x"}, []),
        ({"note": 3}, [("wrong_type", "arguments.note")]),
        ({"gift": None}, []),  # nullable: true
        ({"gift": 3}, [("wrong_type", "arguments.gift")]),
        ({"tags": ["a", "b"]}, []),
        ({"tags": []}, []),
        ({"tags": "a"}, [("wrong_type", "arguments.tags")]),
        ({"tags": ["a", 1, "c", False]}, [("wrong_type", "arguments.tags[1]"), ("wrong_type", "arguments.tags[3]")]),
        ({"grid": [[1, 2], [3]]}, []),
        ({"grid": [[1, 2], [3, "4"]]}, [("wrong_type", "arguments.grid[1][1]")]),  # nested array items
        ({"grid": [1]}, [("wrong_type", "arguments.grid[0]")]),
        ({"pair": ["a", 1.5]}, []),  # items by position
        ({"pair": [1.5, "a"]}, [("wrong_type", "arguments.pair[0]"), ("wrong_type", "arguments.pair[1]")]),
        ({"address": {"street": "Main", "zip": 1000}}, []),
        ({"address": "Main street"}, [("wrong_type", "arguments.address")]),
        (
            {"address": {"zip": "1000"}},
            [("missing_required", "arguments.address.street"), ("wrong_type", "arguments.address.zip")],
        ),
        ({"address": {"street": "Main", "floor": 2}}, [("unknown_parameter", "arguments.address.floor")]),
        ({"code": 7}, []),  # anyOf: the integer branch
        ({"code": "none"}, []),  # anyOf: the enum branch
        ({"code": "some"}, [("not_in_enum", "arguments.code")]),  # the branch it comes closest to
        ({"anything": [1, {"a": None}]}, []),  # no type: not checked
        ({"custom": 12}, []),  # not a JSON Schema type name: not checked
    ],
)
def test_types(arguments: dict[str, Any], expected: list[tuple[str, str]]) -> None:
    assert codes(verify(trajectory(order(**arguments)))) == expected


def test_wrong_type_reason_names_the_value_and_the_expected_type() -> None:
    [problem] = verify(trajectory(order(count=True)))
    assert (
        problem.reason
        == "turn 2 (executor): call place_order (call_1): arguments.count: got boolean true, expected integer"
    )
    [problem] = verify(trajectory(order(note=3)))
    assert problem.reason.endswith("arguments.note: got integer 3, expected string or null")


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        ({"city": "Paris", "unit": "celsius"}, []),
        ({"city": "Paris", "unit": "kelvin"}, [("not_in_enum", "arguments.unit")]),
        ({"city": "Paris", "unit": "Celsius"}, [("not_in_enum", "arguments.unit")]),  # members are exact
        ({"city": "Paris", "unit": 1}, [("wrong_type", "arguments.unit")]),  # a wrong type is not also an enum miss
    ],
)
def test_enum(arguments: dict[str, Any], expected: list[tuple[str, str]]) -> None:
    assert codes(verify(trajectory(ToolCall(name="get_weather", arguments=arguments)))) == expected


def test_enum_compares_as_json() -> None:
    assert verify(trajectory(order(level=2.0))) == []  # 2.0 == 2
    assert codes(verify(trajectory(order(level=3)))) == [("not_in_enum", "arguments.level")]
    loose = Tool(name="pick", parameters={"type": "object", "properties": {"v": {"enum": [1, [1, 2]]}}})
    assert verify(trajectory(ToolCall(name="pick", arguments={"v": [1, 2]}), tools=[loose])) == []
    problems = verify(trajectory(ToolCall(name="pick", arguments={"v": True}), tools=[loose]))  # True == 1 in Python
    assert codes(problems) == [("not_in_enum", "arguments.v")]
    assert problems[0].reason.endswith("arguments.v: got true, expected one of [1, [1, 2]]")


def test_wrong_parameter_count_for_a_function_that_takes_none() -> None:
    assert verify(trajectory(ToolCall(name="list_agencies"))) == []
    [problem] = verify(trajectory(ToolCall(name="list_agencies", arguments={"id": "x", "page": 1})))
    assert (problem.code, problem.parameter) == ("wrong_parameter_count", "arguments")
    assert problem.reason.endswith("list_agencies takes no arguments (its schema has no properties), got 2: id, page")


def test_wrong_parameter_count_by_min_and_max_properties() -> None:
    bounded = Tool(
        name="pick",
        parameters={
            "type": "object",
            "properties": {"a": {}, "b": {}, "c": {}},
            "minProperties": 1,
            "maxProperties": 2,
        },
    )
    assert verify(trajectory(ToolCall(name="pick", arguments={"a": 1}), tools=[bounded])) == []
    [few] = verify(trajectory(ToolCall(name="pick", arguments={}), tools=[bounded]))
    assert few.code == "wrong_parameter_count"
    assert few.reason.endswith("got 0 arguments, minProperties asks for at least 1")
    [many] = verify(trajectory(ToolCall(name="pick", arguments={"a": 1, "b": 2, "c": 3}), tools=[bounded]))
    assert many.reason.endswith("got 3 arguments, maxProperties asks for at most 2")


def test_more_arguments_than_properties_is_unknown_parameters_not_a_count() -> None:
    problems = verify(trajectory(ToolCall(name="get_time", arguments={"zone": "UTC", "city": "Paris"})))
    assert codes(problems) == [("unknown_parameter", "arguments.city")]


@pytest.mark.parametrize(
    ("thought", "calls", "flagged"),
    [
        ("I will call get_weather for Paris.", ["get_weather"], False),
        ("Calling get_weather.", ["get_time"], True),
        ("Let me look up the time there.", ["get_time"], False),  # names no function: never flagged
        (None, ["get_time"], False),  # no thought
        ("", ["get_time"], False),
        ("I should search the web first.", ["get_time"], False),  # 'search' is a plain word, not taken as a name
        ("Not get_weather: I need to get time in Tokyo.", ["get_time"], False),  # the call written as words
        ("GET_TIME is the one, not get_weather.", ["get_time"], False),  # the call in another case
        ("get_weather_v2 would help, but it is not offered.", ["get_time"], False),  # no whole-word candidate
        ("First get_weather, then the time.", ["get_weather", "get_time"], False),  # one of parallel calls named
        ("Both get_weather and search.", ["get_time", "list_agencies"], True),
    ],
)
def test_call_not_in_thought(thought: str | None, calls: list[str], flagged: bool) -> None:
    arguments = {"get_weather": {"city": "Paris"}, "get_time": {"zone": "JST"}}
    made = [ToolCall(name=name, arguments=arguments.get(name, {})) for name in calls]
    problems = verify(trajectory(*made, thought=thought))
    assert codes(problems) == ([("call_not_in_thought", None)] * len(calls) if flagged else [])


def test_call_not_in_thought_reason_and_whole_words() -> None:
    weather_v2 = Tool(name="get_weather_v2", parameters={"type": "object", "properties": {"city": {}}})
    tools = [WEATHER, weather_v2]
    call = ToolCall(name="get_weather", arguments={"city": "Paris"})
    [problem] = verify(trajectory(call, thought="Use get_weather_v2 for Paris.", tools=tools))
    assert problem.code == "call_not_in_thought"
    assert problem.reason == (
        "turn 2 (executor): call get_weather (call_1): the thought before it names get_weather_v2 but not get_weather"
    )
    assert verify(trajectory(call, thought="Use get_weather_v2 or get_weather.", tools=tools)) == []


def test_a_call_outside_the_candidates_is_only_an_unknown_function() -> None:
    problems = verify(trajectory(ToolCall(name="get_news"), thought="I will use get_weather."))
    assert codes(problems) == [("unknown_function", None)]


def test_orphan_observation() -> None:
    good = trajectory(ToolCall(name="get_time"))
    turns = list(good.turns)
    turns.insert(4, Turn(role="observation", content="{}", call_id="call_9"))
    turns.insert(5, Turn(role="observation", content="{}"))  # no call_id, and no unanswered call left
    problems = verify(good.model_copy(update={"turns": turns}))
    assert codes(problems) == [("orphan_observation", None)] * 2
    assert [problem.turn for problem in problems] == [4, 5]
    assert problems[0].reason == "turn 4 (observation): call_id 'call_9' answers no call before it"
    assert problems[1].reason == "turn 5 (observation): no call_id and no unanswered call before it"


def test_an_observation_before_its_call_is_an_orphan() -> None:
    turns = [
        Turn(role="user", content="Hi"),
        Turn(role="observation", content="{}", call_id="call_1"),
        Turn(role="reasoner", next_role="executor"),
        Turn(role="executor", calls=[ToolCall(name="get_time", id="call_1")]),
        Turn(role="observation", content="{}", call_id="call_1"),
    ]
    problems = verify(Trajectory(id="t", tools=TOOLS, turns=turns))
    assert [(problem.code, problem.turn) for problem in problems] == [("orphan_observation", 1)]


def test_observations_without_call_id_answer_calls_in_order() -> None:
    turns = [
        Turn(role="user", content="Hi"),
        Turn(role="reasoner", next_role="executor"),
        Turn(role="executor", calls=[ToolCall(name="get_time"), ToolCall(name="search")]),
        Turn(role="observation", content="{}"),
        Turn(role="observation", content="{}"),
        Turn(role="reasoner", next_role="summarizer"),
        Turn(role="summarizer", content="Done."),
    ]
    assert verify(Trajectory(id="t", tools=TOOLS, turns=turns)) == []
    problems = verify(Trajectory(id="t", tools=TOOLS, turns=turns[:4] + turns[5:]))
    assert [(problem.code, problem.turn, problem.call) for problem in problems] == [("unanswered_call", 2, "search")]


def test_unanswered_call() -> None:
    calls = (ToolCall(name="get_time"), ToolCall(name="search"))
    unanswered = trajectory(*calls, observe=False)
    problems = verify(unanswered)
    assert codes(problems) == [("unanswered_call", None)] * 2
    assert problems[0].reason == (
        "turn 2 (executor): call get_time (call_1): no observation answers it, yet the trajectory goes on "
        "(turn 3, reasoner)"
    )
    # the format had no results
    assert verify(trajectory(*calls, observe=False, missing=["thought", "observation"])) == []
    # the trajectory ends with the call, or with some of its results: nothing goes on without a result
    assert verify(unanswered.model_copy(update={"turns": unanswered.turns[:3]})) == []
    partial = unanswered.turns[:3] + [Turn(role="observation", content="{}", call_id="call_1")]
    assert verify(unanswered.model_copy(update={"turns": partial})) == []


def test_problems_are_in_turn_order_and_all_reported() -> None:
    turns = [
        Turn(role="user", content="Hi"),
        Turn(role="observation", content="{}", call_id="call_7"),
        Turn(role="reasoner", thought="I will call get_weather.", next_role="executor"),
        Turn(role="executor", calls=[ToolCall(name="get_weather", arguments={"unit": "kelvin"}, id="call_1")]),
        Turn(role="reasoner", next_role="executor"),
        Turn(role="executor", calls=[ToolCall(name="get_wether", arguments={}, id="call_2")]),
        Turn(role="observation", content="{}", call_id="call_2"),
        Turn(role="reasoner", next_role="summarizer"),
        Turn(role="summarizer", content="Done."),
    ]
    problems = verify(Trajectory(id="t", tools=TOOLS, turns=turns))
    assert [(problem.turn, problem.code) for problem in problems] == [
        (1, "orphan_observation"),
        (3, "missing_required"),
        (3, "not_in_enum"),
        (3, "unanswered_call"),
        (5, "unknown_function"),
    ]


def test_verify_all_splits_and_counts() -> None:
    good = trajectory(ToolCall(name="get_time", arguments={"zone": "UTC"}), thought="get_time it is.")
    bad_types = trajectory(order(count="2", price="1"))
    off_thought = trajectory(ToolCall(name="get_time"), thought="I will call get_weather.")
    mixed = trajectory(ToolCall(name="nope"), ToolCall(name="get_time"), thought="Calling get_weather.", observe=False)
    kept, dropped = verify_all([good, bad_types, off_thought, mixed])
    assert kept == [good]
    assert [item.trajectory for item in dropped] == [bad_types, off_thought, mixed]
    assert isinstance(dropped[0], Dropped)
    assert [len(item.problems) for item in dropped] == [2, 1, 4]
    assert dropped[2].codes == ["unknown_function", "call_not_in_thought", "unanswered_call"]
    result = verify_all([good, bad_types, off_thought, mixed])
    assert result.report() == {
        "kept": 1,
        "dropped": 3,
        "problems": {"unknown_function": 1, "wrong_type": 2, "call_not_in_thought": 2, "unanswered_call": 2},
        "trajectories": {"unknown_function": 1, "wrong_type": 1, "call_not_in_thought": 2, "unanswered_call": 1},
    }
    kept, dropped = verify_all([good, bad_types, off_thought], ignore={"call_not_in_thought"})
    assert kept == [good, off_thought]
    assert [item.trajectory for item in dropped] == [bad_types]


def test_ignore_rejects_an_unknown_code() -> None:
    with pytest.raises(ValueError, match=r"ignore: unknown code\(s\) \['wrong_types'\]; known codes: unknown_function"):
        verify_all([], ignore=["wrong_types"])
    assert set(CODES) >= {"unknown_function", "missing_required", "wrong_type", "call_not_in_thought"}


def _trajectories(items: list[Trajectory | Malformed]) -> list[Trajectory]:
    assert not [item for item in items if isinstance(item, Malformed)]
    return [item for item in items if isinstance(item, Trajectory)]


def test_glaive_sample() -> None:
    """LLaMA-Factory's glaive_toolcall demo (sharegpt): no thoughts; one call breaks its own schema."""
    path = shared_dataset("glaive-function-calling-v2") / "glaive_toolcall_en_demo.json"
    trajectories = _trajectories(list(read("sharegpt", path)))
    result = verify_all(trajectories)
    assert len(trajectories) == 300
    assert sum(len(t.calls) for t in result.kept) == 210
    assert result.report() == {
        "kept": 299,
        "dropped": 1,
        "problems": {"wrong_type": 1},
        "trajectories": {"wrong_type": 1},
    }
    # track_calories declares calories_per_item a number; the call passes one per food item
    [dropped] = result.dropped
    assert dropped.trajectory.id == "sharegpt-glaive_toolcall_en_demo-259"
    assert [str(problem) for problem in dropped.problems] == [
        "turn 5 (executor): call track_calories (call_1): arguments.calories_per_item: got array [150, 350, 800], "
        "expected number"
    ]


def test_toolbench_sample() -> None:
    """ToolBench's answer examples: one chain calls a tool by its name alone, not as the function it offers."""
    path = shared_dataset("toolbench") / "data_example" / "answer"
    trajectories = _trajectories(list(read("toolbench", path)))
    result = verify_all(trajectories)
    assert len(trajectories) == 5
    assert result.report() == {
        "kept": 4,
        "dropped": 1,
        "problems": {"unknown_function": 1},
        "trajectories": {"unknown_function": 1},
    }
    [dropped] = result.dropped
    assert dropped.trajectory.id == "toolbench/answer/G3/21_ChatGPT_DFS_woFilter_w2"
    [problem] = dropped.problems
    assert (problem.code, problem.turn, problem.call) == ("unknown_function", 6, "dota_2_steam_web")
    assert problem.reason.endswith("closest candidate: match_history_for_dota_2_steam_web")
    # a thought naming the function it calls, and another naming a function it tried before, are kept
    thoughts = [turn.thought for t in result.kept for turn in t.turns if turn.thought and turn.next_role == "executor"]
    assert len(thoughts) == 2
    assert any("search_b_for_seo_api" in thought for thought in thoughts)
