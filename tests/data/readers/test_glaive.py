"""The raw glaive-function-calling-v2 reader, on records written here after the format's published description
(the dataset card of glaiveai/glaive-function-calling-v2); no glaive data is copied into the repository."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mor.data import Trajectory, render_text
from mor.data.readers import Malformed, read
from mor.data.readers.glaive import read_glaive

TOOLS_SYSTEM = (
    "SYSTEM: You are a helpful assistant with access to the following functions. Use them if required -\n"
    + json.dumps(
        {
            "name": "convert_currency",
            "description": "Convert an amount from one currency to another",
            "parameters": {
                "type": "object",
                "properties": {
                    "amount": {"type": "number", "description": "The amount to convert"},
                    "from_currency": {"type": "string", "description": "Currency code to convert from"},
                    "to_currency": {"type": "string", "description": "Currency code to convert to"},
                },
                "required": ["amount", "from_currency", "to_currency"],
            },
        },
        indent=4,
    )
    + "\n\n"
    + json.dumps(
        {
            "name": "get_local_time",
            "description": "Get the local time of a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "str"}}, "required": ["city"]},
        },
        indent=4,
    )
    + "\n"
)
# A call's arguments as the raw data writes them: a JSON string in single quotes (an apostrophe inside, too).
TWO_CALLS_CHAT = (
    "USER: How much is 250 euros in yen?\n\n\n"
    'ASSISTANT: <functioncall> {"name": "convert_currency", "arguments": '
    '\'{"amount": 250, "from_currency": "EUR", "to_currency": "JPY"}\'} <|endoftext|>\n\n\n'
    'FUNCTION RESPONSE: {"converted_amount": 40125.5, "currency": "JPY"}\n\n\n'
    "ASSISTANT: 250 euros are about 40,125.5 Japanese yen. <|endoftext|>\n\n\n"
    "USER: Thanks! And what time is it in Xi'an?\n\n\n"
    'ASSISTANT: <functioncall> {"name": "get_local_time", "arguments": \'{"city": "Xi\'an"}\'} <|endoftext|>\n\n\n'
    'FUNCTION RESPONSE: {"time": "21:04"}\n\n\n'
    "ASSISTANT: It is 21:04 in Xi'an. <|endoftext|>\n"
)
NO_TOOLS = {
    "system": "SYSTEM: You are a helpful assistant, with no access to external functions.",
    "chat": "USER: What is the capital of Peru?\n\n\nASSISTANT: The capital of Peru is Lima. <|endoftext|>\n",
}
# Arguments as an object, and text before the call (the assistant's own words: the reasoner's thought).
OBJECT_ARGUMENTS = {
    "system": TOOLS_SYSTEM,
    "chat": (
        "USER: What time is it in Oslo?\n\n\n"
        'ASSISTANT: Let me look that up. <functioncall> {"name": "get_local_time", "arguments": {"city": "Oslo"}} '
        "<|endoftext|>\n"
    ),
}


def _read(path: Path) -> tuple[list[Trajectory], list[Malformed]]:
    out = list(read_glaive(path))
    trajectories = [t for t in out if isinstance(t, Trajectory)]
    for trajectory in trajectories:
        render_text(trajectory)
    return trajectories, [m for m in out if isinstance(m, Malformed)]


def _write_jsonl(path: Path, lines: list[object]) -> Path:
    path.write_text("".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines))
    return path


def test_a_multi_turn_chat_with_calls_is_one_trajectory(tmp_path: Path) -> None:
    path = tmp_path / "glaive.json"
    path.write_text(json.dumps([{"system": TOOLS_SYSTEM, "chat": TWO_CALLS_CHAT}]))
    [trajectory], malformed = _read(path)
    assert malformed == []
    assert trajectory.id == "glaive-glaive-0"
    assert [tool.name for tool in trajectory.tools] == ["convert_currency", "get_local_time"]
    assert trajectory.tools[1].parameters == {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    }
    assert [turn.role for turn in trajectory.turns] == [
        "system",
        "user",
        "reasoner",
        "executor",
        "observation",
        "reasoner",
        "summarizer",
        "user",
        "reasoner",
        "executor",
        "observation",
        "reasoner",
        "summarizer",
    ]
    system = trajectory.turns[0].content
    assert system == "You are a helpful assistant with access to the following functions. Use them if required -"
    assert trajectory.query == "How much is 250 euros in yen?"
    assert [(c.name, c.arguments, c.id) for c in trajectory.calls] == [
        ("convert_currency", {"amount": 250, "from_currency": "EUR", "to_currency": "JPY"}, "call_1"),
        ("get_local_time", {"city": "Xi'an"}, "call_2"),
    ]
    observations = [turn for turn in trajectory.turns if turn.role == "observation"]
    assert [(o.call_id, json.loads(o.content or "")) for o in observations] == [
        ("call_1", {"converted_amount": 40125.5, "currency": "JPY"}),
        ("call_2", {"time": "21:04"}),
    ]
    assert [t.next_role for t in trajectory.turns if t.role == "reasoner"] == [
        "executor",
        "summarizer",
        "executor",
        "summarizer",
    ]
    assert all(t.thought is None for t in trajectory.turns if t.role == "reasoner")
    assert trajectory.answer == "It is 21:04 in Xi'an."
    assert trajectory.metadata.source == "glaive"
    assert trajectory.metadata.origin == f"{path}:index 0"
    assert trajectory.metadata.missing == ["thought"]
    assert "<|endoftext|>" not in render_text(trajectory)


def test_a_chat_without_functions_and_a_call_with_object_arguments(tmp_path: Path) -> None:
    path = _write_jsonl(tmp_path / "glaive.jsonl", [NO_TOOLS, OBJECT_ARGUMENTS])
    (plain, unanswered), malformed = _read(path)
    assert malformed == []
    assert plain.tools == []
    assert [(t.role, t.content) for t in plain.turns if t.content is not None] == [
        ("system", "You are a helpful assistant, with no access to external functions."),
        ("user", "What is the capital of Peru?"),
        ("summarizer", "The capital of Peru is Lima."),
    ]
    assert plain.metadata.origin == f"{path}:line 1"
    assert [(c.name, c.arguments, c.id) for c in unanswered.calls] == [("get_local_time", {"city": "Oslo"}, "call_1")]
    assert unanswered.turns[2].thought == "Let me look that up."
    assert unanswered.metadata.missing == ["observation", "answer"]


def test_malformed_records_are_reported_and_reading_goes_on(tmp_path: Path) -> None:
    broken_system = 'SYSTEM: You are a helpful assistant with access to the following functions. -\n{"name": "f",'
    path = _write_jsonl(
        tmp_path / "mixed.jsonl",
        [
            NO_TOOLS,
            '{"system": "SYSTEM: hi", "chat": ',
            {"system": TOOLS_SYSTEM, "chat": "USER: Time in Oslo?\n\n\nASSISTANT: <functioncall> get_local_time(Oslo)"},
            {"system": TOOLS_SYSTEM, "chat": 'USER: Hi\n\n\nFUNCTION RESPONSE: {"time": "09:00"}\n\n\nASSISTANT: Hi'},
            {"system": broken_system, "chat": "USER: Hi\n\n\nASSISTANT: Hello <|endoftext|>"},
            {"system": TOOLS_SYSTEM},
            {
                "system": TOOLS_SYSTEM,
                "chat": 'USER: Hi\n\n\nASSISTANT: <functioncall> {"name": "f", "arguments": \'{not json}\'}',
            },
            NO_TOOLS,
        ],
    )
    trajectories, malformed = _read(path)
    assert [t.metadata.origin for t in trajectories] == [f"{path}:line 1", f"{path}:line 8"]
    assert [(m.source, m.file, m.position) for m in malformed] == [
        ("glaive", str(path), f"line {n}") for n in (2, 3, 4, 5, 6, 7)
    ]
    reasons = [m.reason for m in malformed]
    assert reasons[0].startswith("not valid JSON")
    assert reasons[1] == "chat turn 2 (ASSISTANT): the function call is not JSON: 'get_local_time(Oslo)'"
    assert reasons[2] == "chat turn 2 (FUNCTION RESPONSE): a tool result (observation) with no call before it"
    assert reasons[3].startswith("system: function 1 is not valid JSON")
    assert reasons[4].startswith("chat: missing or empty")
    assert reasons[5] == "chat turn 2 (ASSISTANT): arguments of f are not JSON: '{not json}'"


def test_the_registry_reads_glaive_and_a_missing_path_is_named(tmp_path: Path) -> None:
    path = _write_jsonl(tmp_path / "one.jsonl", [NO_TOOLS])
    [trajectory] = list(read("glaive", tmp_path))
    assert trajectory.answer == "The capital of Peru is Lima."
    with pytest.raises(FileNotFoundError, match="nothing-here"):
        read_glaive(tmp_path / "nothing-here")
    assert path.exists()
