"""The ToolACE reader on hand-written records in the format of Team-ACE/ToolACE (tools as a JSON list in the system
prompt, calls as `[Name(arg=value, ...)]`, results as a JSON list in call order)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from mor.data import Trajectory, render_text
from mor.data.readers import Malformed, read
from mor.data.readers.toolace import CallSyntaxError, parse_call_list, read_toolace

TOOLS: list[dict[str, Any]] = [
    {
        "name": "Market Trends API",
        "description": "Get the latest market trends for a country.",
        "parameters": {
            "type": "dict",
            "properties": {
                "trend_type": {"description": "Trend type.", "type": "string", "enum": ["GAINERS", "LOSERS"]},
                "country": {"description": "2-letter country code.", "type": "string", "default": "us"},
            },
            "required": ["trend_type"],
        },
        "required": None,
    },
    {
        "name": "User Feed (Video Posts) V2",
        "description": "Videos a user posted.",
        "parameters": {
            "type": "dict",
            "properties": {
                "username": {"description": "The user.", "type": "string"},
                "limit": {"description": "How many.", "type": "int"},
            },
            "required": ["username"],
        },
        "required": None,
    },
    {
        "name": "get.weather.v2",
        "description": "Weather for a city.",
        "parameters": {
            "type": "dict",
            "properties": {
                "city": {"description": "City name.", "type": "string"},
                "days": {"description": "Forecast days.", "type": "float"},
                "options": {
                    "description": "Display options.",
                    "type": "dict",
                    "properties": {"units": {"type": "string"}, "fields": {"type": "array"}},
                },
            },
            "required": ["city"],
        },
        "required": None,
    },
]

PREAMBLE = (
    "You are an expert in composing functions. You are given a question and a set of possible functions. \n"
    "Based on the question, you will need to make one or more function/tool calls to achieve the purpose. \n"
    "Here is a list of functions in JSON format that you can invoke:\n"
)
CLOSING = (
    ". \nShould you decide to return the function call(s). \n"
    "Put it in the format of [func1(params_name=params_value, params_name2=params_value2...), func2(params)]\n\n"
    "NO other text MUST be included."
)


def system(tools: list[dict[str, Any]] = TOOLS) -> str:
    return PREAMBLE + json.dumps(tools) + CLOSING


def record(*conversation: tuple[str, str], tools: list[dict[str, Any]] = TOOLS) -> dict[str, Any]:
    return {"system": system(tools), "conversations": [{"from": f, "value": v} for f, v in conversation]}


def results(*entries: tuple[str, Any]) -> str:
    return json.dumps([{"name": name, "results": value} for name, value in entries])


def write(tmp_path: Path, records: list[Any], name: str = "data.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(records), encoding="utf-8")
    return path


def read_all(path: Path, **options: Any) -> list[Trajectory | Malformed]:
    """Every item the reader yields; each trajectory must render."""
    out = list(read_toolace(path, **options))
    for item in out:
        if isinstance(item, Trajectory):
            assert render_text(item)
    return out


def only_trajectory(path: Path, **options: Any) -> Trajectory:
    [item] = read_all(path, **options)
    assert isinstance(item, Trajectory), item
    return item


def only_malformed(path: Path) -> Malformed:
    [item] = read_all(path)
    assert isinstance(item, Malformed), item
    return item


def test_a_call_its_result_and_the_answer(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        [
            record(
                ("user", "What are today's top gainers in Germany?"),
                ("assistant", '[Market Trends API(trend_type="GAINERS", country="de")]'),
                ("tool", results(("Market Trends API", {"trends": [{"name": "SAP", "change": "+2.1%"}]}))),
                ("assistant", "SAP leads today's gainers with +2.1%."),
            )
        ],
    )
    trajectory = only_trajectory(path)

    assert trajectory.id == "toolace-data-0"
    assert [tool.name for tool in trajectory.tools] == [
        "Market Trends API",
        "User Feed (Video Posts) V2",
        "get.weather.v2",
    ]
    market = trajectory.tools[0]
    assert market.description == "Get the latest market trends for a country."
    assert market.parameters == {
        "type": "object",
        "properties": {
            "trend_type": {"type": "string", "description": "Trend type.", "enum": ["GAINERS", "LOSERS"]},
            "country": {"type": "string", "description": "2-letter country code.", "default": "us"},
        },
        "required": ["trend_type"],
    }
    weather = trajectory.tools[2].parameters["properties"]
    assert weather["days"]["type"] == "number"
    assert weather["options"]["type"] == "object"
    assert weather["options"]["properties"] == {"units": {"type": "string"}, "fields": {"type": "array"}}
    assert trajectory.tools[1].parameters["properties"]["limit"]["type"] == "integer"

    assert [turn.role for turn in trajectory.turns] == [
        "system",
        "user",
        "reasoner",
        "executor",
        "observation",
        "reasoner",
        "summarizer",
    ]
    prompt = trajectory.turns[0].content or ""
    assert prompt.startswith("You are an expert in composing functions.")
    assert "NO other text MUST be included." in prompt
    assert "Market Trends API" not in prompt  # the tool list is the renderer's job
    assert trajectory.turns[2].thought is None and trajectory.turns[2].next_role == "executor"
    [call] = trajectory.turns[3].calls
    assert (call.name, call.arguments, call.id) == (
        "Market Trends API",
        {"trend_type": "GAINERS", "country": "de"},
        "call_1",
    )
    observation = trajectory.turns[4]
    assert observation.call_id == "call_1"
    assert json.loads(observation.content or "") == {"trends": [{"name": "SAP", "change": "+2.1%"}]}
    assert trajectory.turns[5].next_role == "summarizer"
    assert trajectory.answer == "SAP leads today's gainers with +2.1%."

    assert trajectory.metadata.source == "toolace"
    assert trajectory.metadata.origin == f"{path}:index 0"  # type: ignore[attr-defined]
    assert trajectory.metadata.missing == ["thought"]  # type: ignore[attr-defined]
    text = render_text(trajectory)
    assert '<|executor|>{"name": "Market Trends API", "arguments": {"trend_type": "GAINERS", "country": "de"}}' in text


def test_multi_turn_with_a_question_back_parallel_calls_and_a_last_call_without_result(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        [
            record(
                ("user", "Show me the weather and the market."),
                ("assistant", "Which city, and which market trend type would you like?"),
                ("user", "Berlin for 2.5 days, and the losers."),
                (
                    "assistant",
                    '[get.weather.v2(city="Berlin", days=2.5, options={"units": "metric", "fields": ["temp", "wind"]}),'
                    ' Market Trends API(trend_type="LOSERS")]',
                ),
                (
                    "tool",
                    results(("get.weather.v2", {"temp": [21, 19]}), ("Market Trends API", {"trends": ["BAYN"]})),
                ),
                ("assistant", "Berlin: 21 then 19 degrees. Bayer is the top loser."),
                ("user", "Now the latest 5 videos of @chef_anna."),
                ("assistant", '[User Feed (Video Posts) V2(username="@chef_anna", limit=5)]'),
            )
        ],
    )
    trajectory = only_trajectory(path)

    roles = [turn.role for turn in trajectory.turns]
    assert roles == [
        "system",
        "user",
        "reasoner",
        "summarizer",  # the question back is text
        "user",
        "reasoner",
        "executor",
        "observation",
        "observation",
        "reasoner",
        "summarizer",
        "user",
        "reasoner",
        "executor",
    ]
    assert trajectory.turns[3].content == "Which city, and which market trend type would you like?"
    parallel = trajectory.turns[6].calls
    assert [(c.id, c.name) for c in parallel] == [("call_1", "get.weather.v2"), ("call_2", "Market Trends API")]
    assert parallel[0].arguments == {
        "city": "Berlin",
        "days": 2.5,
        "options": {"units": "metric", "fields": ["temp", "wind"]},
    }
    assert [(t.call_id, json.loads(t.content or "")) for t in trajectory.turns[7:9]] == [
        ("call_1", {"temp": [21, 19]}),
        ("call_2", {"trends": ["BAYN"]}),
    ]
    [last] = trajectory.turns[13].calls
    assert (last.id, last.name, last.arguments) == (
        "call_3",
        "User Feed (Video Posts) V2",
        {"username": "@chef_anna", "limit": 5},
    )
    assert trajectory.metadata.missing == ["thought", "observation", "answer"]  # type: ignore[attr-defined]


def test_argument_values_with_commas_parentheses_quotes_and_nesting(tmp_path: Path) -> None:
    call = (
        "[get.weather.v2("
        'city="Paris, France (Île-de-France)", '
        "note='it\\'s \"fine\", (really) = ok', "
        'escaped="say \\"hi\\", then \\\\ leave\\nnow", '
        "options={'units': 'metric', 'fields': ['temp', ('wind', 3)], 'nested': {'deep': [[1, -2.5e3], {}]}}, "
        "days=+3, ratio=.5, flags=[true, False, null, None, True], empty='', "
        'query_with_brackets="a[0] = f(x), g{y}",)]'
    )
    path = write(tmp_path, [record(("user", "weather"), ("assistant", call))])
    [parsed] = only_trajectory(path).calls
    assert parsed.arguments == {
        "city": "Paris, France (Île-de-France)",
        "note": 'it\'s "fine", (really) = ok',
        "escaped": 'say "hi", then \\ leave\nnow',
        "options": {"units": "metric", "fields": ["temp", ["wind", 3]], "nested": {"deep": [[1, -2500.0], {}]}},
        "days": 3,
        "ratio": 0.5,
        "flags": [True, False, None, None, True],
        "empty": "",
        "query_with_brackets": "a[0] = f(x), g{y}",
    }


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('[Market Trends API(trend_type="GAINERS")]', [("Market Trends API", {"trend_type": "GAINERS"})]),
        ("[GetCompetitions()]", [("GetCompetitions", {})]),
        ("  [ a.b.c ( x = 1 ) , d_e ( ) , ]  ", [("a.b.c", {"x": 1}), ("d_e", {})]),
        ("[Countries All (min)(region='EU')]", [("Countries All (min)", {"region": "EU"})]),
        ("[Get Chat Code (Code to Chat)()]", [("Get Chat Code (Code to Chat)", {})]),
        ("[M4.5+ Earthquakes, Past 7 Days(limit=3)]", [("M4.5+ Earthquakes, Past 7 Days", {"limit": 3})]),
        ("[/email/validate(email='a@b.co')]", [("/email/validate", {"email": "a@b.co"})]),
        ('[Get Agent\'s Active Listings(agent_id="7")]', [("Get Agent's Active Listings", {"agent_id": "7"})]),
        (
            "[Bible Search(include-lxx=true, api-version='2')]",
            [("Bible Search", {"include-lxx": True, "api-version": "2"})],
        ),
        ('[A(x={"k": "v", 1: 2, true: null})]', [("A", {"x": {"k": "v", "1": 2, "true": None}})]),
        ('[A(doc="""multi\nline "quoted" text""")]', [("A", {"doc": 'multi\nline "quoted" text'})]),
        ('[A(path="C:\\/tmp\\u00e9")]', [("A", {"path": "C:/tmpé"})]),
        (
            '[Send(body="Hi,\nsee (attached)"), Send(body="Bye")]',
            [("Send", {"body": "Hi,\nsee (attached)"}), ("Send", {"body": "Bye"})],
        ),
    ],
)
def test_call_syntax(text: str, expected: list[tuple[str, dict[str, Any]]]) -> None:
    assert [(call.name, call.arguments) for call in parse_call_list(text)] == expected


def test_known_tool_names_are_tried_first() -> None:
    # Two readings parse; the first '(' wins unless the longer name is an offered tool.
    text = "[A(), B(x=1)]"
    assert [(c.name, c.arguments) for c in parse_call_list(text)] == [("A", {}), ("B", {"x": 1})]
    assert [(c.name, c.arguments) for c in parse_call_list(text, {"A(), B"})] == [("A(), B", {"x": 1})]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[A(x=2023-05-01)]", r"unexpected '-' after a value at character 9"),
        ("[A(x=foo)]", r"bare word 'foo' is not a value"),
        ('[A("x")]', r"expected an argument name"),
        ("[A(x=1) B(y=2)]", r"expected ',' or '\]' after the call of 'A'"),
        ("[A(x=1)] and more", r"text after the call list"),
        ('[A(x="open)]', r"unterminated string at character 5"),
        ("[A(x=1, x=2)]", r"argument 'x' given twice"),
        ("[A(zip=02134)]", r"leading zero"),
        ("[A(x=[1, 2)]", r"expected ',' or '\]' in a list"),
        ("[A(x={'a' 1})]", r"expected ':' after the dict key 'a'"),
        ("[A(x=1e999)]", r"out of range"),
        ("[A(x=" + "[" * 80 + "]" * 80 + ")]", r"nested deeper than 64"),
        ("[]", r"an empty call list"),
    ],
)
def test_call_syntax_errors_say_what_and_where(text: str, message: str) -> None:
    with pytest.raises(CallSyntaxError, match=message):
        parse_call_list(text)


def test_text_that_is_not_a_call_list_is_an_answer(tmp_path: Path) -> None:
    answers = [
        '["Berlin", "Paris"] are both capitals.',
        "[Note] I need the city (and the country).",
        "Done (see above).",
    ]
    path = write(tmp_path, [record(("user", "q"), ("assistant", answer)) for answer in answers])
    trajectories = read_all(path)
    assert [t.answer for t in trajectories if isinstance(t, Trajectory)] == answers
    assert all(t.metadata.missing == ["thought"] for t in trajectories if isinstance(t, Trajectory))  # type: ignore[attr-defined]


def test_results_out_of_call_order_are_matched_by_name(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        [
            record(
                ("user", "both"),
                ("assistant", "[Market Trends API(trend_type='GAINERS'), get.weather.v2(city='Oslo')]"),
                ("tool", results(("get.weather.v2", {"temp": 3}), ("Market Trends API", "no trends today"))),
                ("assistant", "3 degrees; no trends."),
            )
        ],
    )
    observations = [t for t in only_trajectory(path).turns if t.role == "observation"]
    assert [(t.call_id, t.content) for t in observations] == [("call_2", '{"temp": 3}'), ("call_1", "no trends today")]


def test_a_plain_text_result_of_one_call(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        [
            record(
                ("user", "weather"),
                ("assistant", "[get.weather.v2(city='Oslo')]"),
                ("tool", "Service unavailable, try later"),
                ("assistant", "The weather service is down."),
            )
        ],
    )
    observation = only_trajectory(path).turns[4]
    assert (observation.role, observation.call_id, observation.content) == (
        "observation",
        "call_1",
        "Service unavailable, try later",
    )


def test_a_call_to_a_function_not_offered_is_kept(tmp_path: Path) -> None:
    path = write(tmp_path, [record(("user", "q"), ("assistant", "[Unknown Tool(x=1)]"))])
    trajectory = only_trajectory(path)
    assert [call.name for call in trajectory.calls] == ["Unknown Tool"]
    assert trajectory.tool("Unknown Tool") is None  # checking it is the verification stage's job


def test_system_prompt_options(tmp_path: Path) -> None:
    path = write(tmp_path, [record(("user", "q"), ("assistant", "a"))])
    kept = only_trajectory(path, system_prompt="keep")
    assert kept.turns[0].content == system()
    dropped = only_trajectory(path, system_prompt="drop")
    assert [turn.role for turn in dropped.turns] == ["user", "reasoner", "summarizer"]
    assert len(dropped.tools) == 3
    with pytest.raises(ValueError, match=r"system_prompt: got 'none', must be one of"):
        read_toolace(path, system_prompt="none")  # type: ignore[arg-type]


def test_the_registry_finds_the_reader(tmp_path: Path) -> None:
    path = write(tmp_path, [record(("user", "q"), ("assistant", "a"))])
    [item] = list(read("toolace", path, system_prompt="drop"))
    assert isinstance(item, Trajectory) and item.turns[0].role == "user"


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        ("not a record", r"expected an object with 'system' and 'conversations', got str"),
        ({"conversations": []}, r"system: missing or not a string"),
        ({"system": system(), "conversations": []}, r"conversations: missing, empty"),
        (
            {"system": "You are helpful.", "conversations": [{"from": "user", "value": "q"}]},
            r"system: no JSON list of functions found",
        ),
        (
            {
                "system": PREAMBLE + '[{"name": "A", "parameters": {' + CLOSING,
                "conversations": [{"from": "user", "value": "q"}],
            },
            r"no JSON list of functions found.*not valid JSON",
        ),
        (record(("user", "q"), tools=[{"description": "no name"}]), r"tools\[0\]: expected an object with a name"),
        (
            record(("user", "q"), ("assistant", '[Market Trends API(trend_type="GAINERS", country=us)]')),
            r"conversations\[1\]: unparsable call list: bare word 'us' is not a value",
        ),
        (
            record(("user", "q"), ("assistant", '[Market Trends API(trend_type="GAINERS")')),
            r"conversations\[1\]: unparsable call list: expected ',' or '\]' after the call",
        ),
        (
            record(("user", "q"), ("tool", results(("A", 1)))),
            r"conversations\[1\]: a tool result, but no call awaits one",
        ),
        (
            record(("user", "q"), ("assistant", "[A(x=1)]"), ("tool", results(("A", 1), ("B", 2)))),
            r"conversations\[2\]: 2 tool results, but 1 calls await results",
        ),
        (
            record(("user", "q"), ("assistant", "[A(x=1), B(y=2)]"), ("tool", "not json")),
            r"conversations\[2\]: tool results are not JSON, and 2 calls await results",
        ),
        (
            record(("user", "q"), ("assistant", "[A(x=1)]"), ("assistant", "done")),
            r"conversations\[2\]: call_1 \(A\) has no result before this assistant message",
        ),
        (
            record(("user", "q"), ("gpt", "a")),
            r"conversations\[1\]\.from: got 'gpt', expected 'user', 'assistant' or 'tool'",
        ),
        (record(("user", "q"), ("assistant", "  ")), r"conversations\[1\]: an empty assistant message"),
        (record(("user", "q")), r"no assistant message"),
        (
            {"system": system(), "conversations": [{"from": "user", "value": 3}]},
            r"conversations\[0\]\.value: expected a string",
        ),
    ],
)
def test_malformed_records_are_reported_not_raised(tmp_path: Path, bad: Any, reason: str) -> None:
    good = record(("user", "q"), ("assistant", "a"))
    items = read_all(write(tmp_path, [good, bad, good]))
    assert [type(item) for item in items] == [Trajectory, Malformed, Trajectory]
    malformed = items[1]
    assert isinstance(malformed, Malformed)
    assert (malformed.source, malformed.position) == ("toolace", "index 1")
    assert malformed.file == str(tmp_path / "data.json")
    assert re.search(reason, malformed.reason), malformed.reason


def test_invalid_json_files_and_lines(tmp_path: Path) -> None:
    (tmp_path / "broken.json").write_text('[{"system": ', encoding="utf-8")
    assert only_malformed(tmp_path / "broken.json").position == "file"

    lines = [
        json.dumps(record(("user", "q"), ("assistant", "a"))),
        "{not json",
        json.dumps(record(("user", "r"), ("assistant", "b"))),
    ]
    (tmp_path / "mixed.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    items = read_all(tmp_path / "mixed.jsonl")
    assert [type(item) for item in items] == [Trajectory, Malformed, Trajectory]
    assert isinstance(items[1], Malformed) and items[1].position == "line 2"
    assert items[1].reason.startswith("not valid JSON")
    assert [item.id for item in items if isinstance(item, Trajectory)] == ["toolace-mixed-1", "toolace-mixed-3"]


def test_a_directory_is_read_file_by_file(tmp_path: Path) -> None:
    write(tmp_path, [record(("user", "q"), ("assistant", "a"))], name="a.json")
    write(tmp_path, [record(("user", "q"), ("assistant", "b"))] * 2, name="b.json")
    items = read_all(tmp_path)
    assert [item.id for item in items if isinstance(item, Trajectory)] == ["toolace-a-0", "toolace-b-0", "toolace-b-1"]
