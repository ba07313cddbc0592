"""The sharegpt reader: LLaMA-Factory's glaive_toolcall sample (shared, 300 conversations), the ToolACE sample as a
format check only (a lossy third-party conversion), renamed columns, parallel calls and malformed records."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mor.data import Trajectory, render_text
from mor.data.readers import Malformed, read
from mor.data.readers.sharegpt import read_sharegpt

DATASETS = Path(__file__).resolve().parents[3].parent / "shared" / "datasets"
GLAIVE_SAMPLE = DATASETS / "glaive-function-calling-v2" / "glaive_toolcall_en_demo.json"
TOOLACE_SAMPLE = DATASETS / "toolace" / "sharegpt_func_fixed.json"

WEATHER_TOOLS = json.dumps(
    [
        {
            "name": "get_weather",
            "description": "Current weather of a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
        }
    ]
)


def _split(out: list[Trajectory | Malformed]) -> tuple[list[Trajectory], list[Malformed]]:
    trajectories = [t for t in out if isinstance(t, Trajectory)]
    for trajectory in trajectories:
        render_text(trajectory)
    return trajectories, [m for m in out if isinstance(m, Malformed)]


@pytest.fixture(scope="module")
def glaive_sample() -> list[Trajectory]:
    trajectories, malformed = _split(list(read_sharegpt(GLAIVE_SAMPLE)))
    assert malformed == []
    return trajectories


def test_the_glaive_toolcall_sample_reads_whole(glaive_sample: list[Trajectory]) -> None:
    assert len(glaive_sample) == 300
    assert sum(len(t.calls) for t in glaive_sample) == 211
    assert sum(1 for t in glaive_sample for turn in t.turns if turn.role == "observation") == 211
    assert {t.metadata.source for t in glaive_sample} == {"sharegpt"}
    assert {tuple(t.metadata.missing) for t in glaive_sample} == {("thought",)}
    assert len({t.id for t in glaive_sample}) == 300


def test_a_multi_turn_conversation_of_the_sample(glaive_sample: list[Trajectory]) -> None:
    first = glaive_sample[0]
    assert first.id == "sharegpt-glaive_toolcall_en_demo-0"
    assert first.metadata.origin == f"{GLAIVE_SAMPLE}:index 0"
    assert first.query == "Hi, I have some ingredients and I want to cook something. Can you help me find a recipe?"
    assert [turn.role for turn in first.turns] == [
        "user",
        "reasoner",
        "summarizer",
        "user",
        "reasoner",
        "executor",
        "observation",
        "reasoner",
        "summarizer",
        "user",
        "reasoner",
        "summarizer",
    ]
    assert [(c.name, c.arguments, c.id) for c in first.calls] == [
        ("search_recipes", {"ingredients": ["chicken", "bell peppers", "rice"]}, "call_1")
    ]
    assert first.turns[6].call_id == "call_1"
    assert json.loads(first.turns[6].content or "")["recipes"][0]["name"] == "Chicken and Bell Pepper Stir Fry"
    assert [(t.thought, t.next_role) for t in first.turns if t.role == "reasoner"] == [
        (None, "summarizer"),
        (None, "executor"),
        (None, "summarizer"),
        (None, "summarizer"),
    ]
    assert first.answer is not None and first.answer.startswith("I'm sorry, but as an AI, I don't have the capability")
    [tool] = first.tools
    assert tool.name == "search_recipes"
    assert tool.parameters["properties"]["ingredients"] == {
        "type": "array",
        "description": "The ingredients to search for",
        "items": {"type": "string"},
    }
    assert tool.required == ["ingredients"]


def test_calls_are_numbered_over_the_trajectory(glaive_sample: list[Trajectory]) -> None:
    areas = glaive_sample[3]
    assert [(c.arguments["shape"], c.id) for c in areas.calls] == [
        ("rectangle", "call_1"),
        ("circle", "call_2"),
        ("square", "call_3"),
    ]
    assert [t.call_id for t in areas.turns if t.role == "observation"] == ["call_1", "call_2", "call_3"]
    assert [tool.name for tool in areas.tools] == ["calculate_area", "calculate_discount"]


def test_the_toolace_sample_parses() -> None:
    # Format check only: the sample's function names and arguments are damaged by its conversion (LICENSE.txt).
    trajectories, malformed = _split(list(read_sharegpt(TOOLACE_SAMPLE)))
    assert len(trajectories) + len(malformed) == 100
    assert [(m.position, m.reason) for m in malformed] == [
        ("index 85", "conversations[3]: the function_call value holds no call")
    ]
    assert all(t.turns[0].role == "system" and t.tools == [] for t in trajectories)
    assert all("tools" in t.metadata.missing for t in trajectories if t.calls)
    parallel = [turn for t in trajectories for turn in t.turns if len(turn.calls) > 1]
    assert parallel and all(call.id for turn in parallel for call in turn.calls)
    # a conversation that ends with its calls has neither their results nor an answer
    assert any({"observation", "answer"} <= set(t.metadata.missing) for t in trajectories)


def test_parallel_calls_and_their_results_in_order(tmp_path: Path) -> None:
    record = {
        "system": "Answer briefly.",
        "tools": WEATHER_TOOLS,
        "conversations": [
            {"from": "human", "value": "Weather in Rome and Oslo?"},
            {
                "from": "function_call",
                "value": json.dumps(
                    [
                        {"name": "get_weather", "arguments": {"city": "Rome"}},
                        {"name": "get_weather", "arguments": '{"city": "Oslo"}'},
                    ]
                ),
            },
            {"from": "observation", "value": json.dumps([{"temp": 24}, {"temp": 3}])},
            {"from": "gpt", "value": "Rome 24°C, Oslo 3°C."},
        ],
    }
    path = tmp_path / "parallel.jsonl"
    path.write_text(json.dumps(record, ensure_ascii=False) + "\n")
    [trajectory], malformed = _split(list(read_sharegpt(path)))
    assert malformed == []
    assert trajectory.turns[0].content == "Answer briefly."
    assert [(c.arguments["city"], c.id) for c in trajectory.calls] == [("Rome", "call_1"), ("Oslo", "call_2")]
    observations = [(t.call_id, t.content) for t in trajectory.turns if t.role == "observation"]
    assert observations == [("call_1", '{"temp": 24}'), ("call_2", '{"temp": 3}')]
    assert trajectory.answer == "Rome 24°C, Oslo 3°C."
    assert trajectory.metadata.origin == f"{path}:line 1"


def test_renamed_columns_and_tags(tmp_path: Path) -> None:
    record = {
        "messages": [
            {"role": "system", "content": "Be terse."},
            {"role": "user", "content": "Weather in Rome?"},
            {"role": "tool_call", "content": '{"name": "get_weather", "arguments": {"city": "Rome"}}'},
            {"role": "tool", "content": '{"temp": 24}'},
            {"role": "assistant", "content": "24°C."},
        ],
        "system": "replaced by the system message",
        "functions": WEATHER_TOOLS,
    }
    path = tmp_path / "renamed.json"
    path.write_text(json.dumps([record]))
    columns = {
        "messages": "messages",
        "tools": "functions",
        "role_tag": "role",
        "content_tag": "content",
        "user_tag": "user",
        "assistant_tag": "assistant",
        "function_tag": "tool_call",
        "observation_tag": "tool",
    }
    [trajectory] = list(read("sharegpt", path, columns=columns))
    assert isinstance(trajectory, Trajectory)
    render_text(trajectory)
    assert [turn.role for turn in trajectory.turns] == [
        "system",
        "user",
        "reasoner",
        "executor",
        "observation",
        "reasoner",
        "summarizer",
    ]
    assert trajectory.turns[0].content == "Be terse."
    assert trajectory.tools[0].name == "get_weather"
    assert trajectory.answer == "24°C."


def test_unknown_columns_are_refused_at_once() -> None:
    with pytest.raises(ValueError, match=r"columns.role: unknown; known keys: messages, system, tools, role_tag"):
        read_sharegpt("anything", columns={"role": "from"})
    with pytest.raises(ValueError, match=r"columns.messages: got '', must be a non-empty string"):
        read_sharegpt("anything", columns={"messages": ""})


def test_malformed_records_are_reported_and_reading_goes_on(tmp_path: Path) -> None:
    good = {
        "conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello!"}],
    }
    path = tmp_path / "mixed.jsonl"
    lines = [
        json.dumps(good),
        '{"conversations": [',
        json.dumps(
            {
                "conversations": [
                    {"from": "human", "value": "Hi"},
                    {"from": "function_call", "value": "get_weather(Rome)"},
                ]
            }
        ),
        json.dumps({"conversations": [{"from": "human", "value": "Hi"}, {"from": "observation", "value": "{}"}]}),
        json.dumps({"conversations": [{"from": "human", "value": "Hi"}, {"from": "bot", "value": "Hello"}]}),
        json.dumps({"conversations": [{"from": "human", "value": "Hi"}], "tools": "[{not json"}),
        json.dumps({"conversations": [{"from": "gpt", "value": "Hello"}]}),
        json.dumps({"conversations": []}),
        json.dumps(good),
    ]
    path.write_text("\n".join(lines) + "\n")
    trajectories, malformed = _split(list(read_sharegpt(path)))
    assert [t.metadata.origin for t in trajectories] == [f"{path}:line 1", f"{path}:line 9"]
    assert trajectories[0].metadata.missing == ["thought"]
    assert [(m.source, m.position) for m in malformed] == [("sharegpt", f"line {n}") for n in range(2, 9)]
    reasons = [m.reason for m in malformed]
    assert reasons[0].startswith("not valid JSON")
    assert reasons[1].startswith("conversations[1]: the function_call value is not JSON (Expecting value)")
    assert reasons[2] == "conversations[1]: a tool result (observation) with no call before it"
    assert reasons[3].startswith("conversations[1].from: got 'bot', expected one of 'human', 'gpt'")
    assert reasons[4].startswith("tools: not valid JSON")
    assert reasons[5] == "no user message"
    assert reasons[6] == "conversations: missing or empty; expected a list of messages"


def test_gpt_text_before_a_call_is_an_answer_not_a_thought(tmp_path: Path) -> None:
    record = {
        "tools": WEATHER_TOOLS,
        "conversations": [
            {"from": "human", "value": "Weather in Rome?"},
            {"from": "gpt", "value": "Let me check."},
            {"from": "function_call", "value": '{"name": "get_weather", "arguments": {"city": "Rome"}}'},
            {"from": "observation", "value": '{"temp": 24}'},
            {"from": "gpt", "value": "24°C."},
        ],
    }
    path = tmp_path / "one.json"
    path.write_text(json.dumps(record))
    [trajectory] = list(read_sharegpt(path))
    assert isinstance(trajectory, Trajectory)
    assert trajectory.metadata.origin == f"{path}:file"
    assert [(t.role, t.thought, t.next_role, t.content) for t in trajectory.turns if not t.calls] == [
        ("user", None, None, "Weather in Rome?"),
        ("reasoner", None, "summarizer", None),
        ("summarizer", None, None, "Let me check."),
        ("reasoner", None, "executor", None),
        ("observation", None, None, '{"temp": 24}'),
        ("reasoner", None, "summarizer", None),
        ("summarizer", None, None, "24°C."),
    ]
    assert trajectory.metadata.missing == ["thought"]
