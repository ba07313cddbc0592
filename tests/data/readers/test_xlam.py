"""The xLAM reader on hand-written records in the format of Salesforce/xlam-function-calling-60k (`tools` and
`answers` as JSON strings, parameters in xLAM's own name → {type, description, default} form)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from mor.data import Trajectory, render_text
from mor.data.readers import Malformed, read
from mor.data.readers.xlam import read_xlam, xlam_parameters

TOOLS: list[dict[str, Any]] = [
    {
        "name": "get_ip_location",
        "description": "Retrieves the latitude and longitude of an IP address.",
        "parameters": {"ip": {"description": "The IP address to locate.", "type": "str", "default": "8.8.8.8"}},
    },
    {
        "name": "calculate_order_total",
        "description": "Total cost of an order.",
        "parameters": {
            "items": {"description": "Item names.", "type": "List[str]"},
            "quantities": {"description": "Quantities.", "type": "List[int]"},
            "prices": {"description": "Unit prices.", "type": "List[float]"},
            "discount": {"description": "Discount rate.", "type": "float, optional", "default": ""},
        },
    },
    {
        "name": "search",
        "description": "Searches entries with filters.",
        "parameters": {
            "text": {"description": "Headword.", "type": "str, optional", "default": ""},
            "page": {"description": "Page number. Defaults to 1.", "type": "int, optional", "default": "1"},
            "exact": {"description": "Exact matches only.", "type": "bool, optional", "default": "false"},
            "filters": {"description": "Extra filters.", "type": "Dict[str, Any]", "default": "{}"},
        },
    },
]


def record(answers: list[dict[str, Any]], *, tools: Any = None, **fields: Any) -> dict[str, Any]:
    return {
        "id": fields.pop("id", 7),
        "query": fields.pop("query", "Where is 1.1.1.1, and what do 2 pens at $1.5 cost?"),
        "tools": json.dumps(TOOLS) if tools is None else tools,
        "answers": json.dumps(answers),
        **fields,
    }


ONE = [{"name": "get_ip_location", "arguments": {"ip": "1.1.1.1"}}]
TWO = [
    {"name": "get_ip_location", "arguments": {"ip": "1.1.1.1"}},
    {"name": "calculate_order_total", "arguments": {"items": ["pen"], "quantities": [2], "prices": [1.5]}},
]


def write(tmp_path: Path, records: list[Any], name: str = "xlam.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(records), encoding="utf-8")
    return path


def read_all(path: Path) -> list[Trajectory | Malformed]:
    """Every item the reader yields; each trajectory must render."""
    out = list(read_xlam(path))
    for item in out:
        if isinstance(item, Trajectory):
            assert render_text(item)
    return out


def test_parallel_answers_are_one_executor_turn(tmp_path: Path) -> None:
    path = write(tmp_path, [record(TWO)])
    [trajectory] = read_all(path)
    assert isinstance(trajectory, Trajectory)

    assert trajectory.id == "xlam-7"
    assert [turn.role for turn in trajectory.turns] == ["user", "reasoner", "executor"]
    assert trajectory.query == "Where is 1.1.1.1, and what do 2 pens at $1.5 cost?"
    reasoner = trajectory.turns[1]
    assert (reasoner.thought, reasoner.next_role) == (None, "executor")
    calls = trajectory.turns[2].calls
    assert [(c.id, c.name, c.arguments) for c in calls] == [
        ("call_1", "get_ip_location", {"ip": "1.1.1.1"}),
        ("call_2", "calculate_order_total", {"items": ["pen"], "quantities": [2], "prices": [1.5]}),
    ]
    assert trajectory.answer is None
    assert trajectory.metadata.source == "xlam"
    assert trajectory.metadata.origin == f"{path}:index 0"  # type: ignore[attr-defined]
    assert trajectory.metadata.missing == ["thought", "observation", "answer"]  # type: ignore[attr-defined]
    text = render_text(trajectory)
    assert (
        '<|executor|>{"name": "get_ip_location", "arguments": {"ip": "1.1.1.1"}}\n{"name": "calculate_order_total"'
        in text
    )


def test_tools_are_normalised_to_json_schema(tmp_path: Path) -> None:
    [trajectory] = read_all(write(tmp_path, [record(ONE)]))
    assert isinstance(trajectory, Trajectory)
    ip, order, search = trajectory.tools
    assert (ip.name, ip.description) == ("get_ip_location", "Retrieves the latitude and longitude of an IP address.")
    assert ip.parameters == {
        "type": "object",
        "properties": {"ip": {"type": "string", "description": "The IP address to locate.", "default": "8.8.8.8"}},
    }
    assert order.parameters == {
        "type": "object",
        "properties": {
            "items": {"type": "array", "items": {"type": "string"}, "description": "Item names."},
            "quantities": {"type": "array", "items": {"type": "integer"}, "description": "Quantities."},
            "prices": {"type": "array", "items": {"type": "number"}, "description": "Unit prices."},
            "discount": {"type": "number", "description": "Discount rate."},  # "" meant no default
        },
        "required": ["items", "quantities", "prices"],
    }
    assert search.parameters["properties"] == {
        "text": {"type": "string", "description": "Headword.", "default": ""},
        "page": {"type": "integer", "description": "Page number. Defaults to 1.", "default": 1},
        "exact": {"type": "boolean", "description": "Exact matches only.", "default": False},
        "filters": {"type": "object", "description": "Extra filters.", "default": {}},
    }
    assert "required" not in search.parameters


@pytest.mark.parametrize(
    ("spelling", "schema", "required"),
    [
        ("str", {"type": "string"}, True),
        ("int, optional", {"type": "integer"}, False),
        ("float, optional", {"type": "number"}, False),
        ("List[int]", {"type": "array", "items": {"type": "integer"}}, True),
        ("List[int], optional", {"type": "array", "items": {"type": "integer"}}, False),
        ("list", {"type": "array"}, True),
        ("List", {"type": "array"}, True),
        ("Dict[str, Any]", {"type": "object"}, True),
        ("Dict[str, List[int]], optional", {"type": "object"}, False),
        ("List[Dict[str, Any]]", {"type": "array", "items": {"type": "object"}}, True),
        ("List[List[float]]", {"type": "array", "items": {"type": "array", "items": {"type": "number"}}}, True),
        ("Tuple[float, float]", {"type": "array", "items": {"type": "number"}}, True),
        ("Tuple[int, str]", {"type": "array"}, True),
        ("Set[str]", {"type": "array", "items": {"type": "string"}}, True),
        ("typing.List[str]", {"type": "array", "items": {"type": "string"}}, True),
        ("Union[int, float]", {"type": ["integer", "number"]}, True),
        ("int or float", {"type": ["integer", "number"]}, True),
        ("List[Union[int, float]]", {"type": "array", "items": {"type": ["integer", "number"]}}, True),
        ("Optional[str]", {"type": "string"}, False),
        ("Optional[List[int]]", {"type": "array", "items": {"type": "integer"}}, False),
        ("Union[str, None]", {"type": "string"}, False),
        ("int | None", {"type": "integer"}, False),
        ("str (optional)", {"type": "string"}, False),
        ("float, default=0.5", {"type": "number"}, False),
        ("Literal['asc', 'desc']", {"type": "string", "enum": ["asc", "desc"]}, True),
        ("Callable", {}, True),
        ("Callable[[int], int]", {}, True),
        ("Any", {}, True),
        ("datetime.date", {"type": "string"}, True),
    ],
)
def test_xlam_type_spellings(spelling: str, schema: dict[str, Any], required: bool) -> None:
    normalised = xlam_parameters({"x": {"description": "d", "type": spelling}})
    assert normalised["properties"]["x"] == {**schema, "description": "d"}
    assert normalised.get("required", []) == (["x"] if required else [])


def test_parameters_named_like_schema_keywords_stay_parameters() -> None:
    normalised = xlam_parameters(
        {
            "properties": {"description": "Which properties.", "type": "List[str]"},
            "type": {"description": "Kind.", "type": "str", "default": "all"},
        }
    )
    assert normalised == {
        "type": "object",
        "properties": {
            "properties": {"type": "array", "items": {"type": "string"}, "description": "Which properties."},
            "type": {"type": "string", "description": "Kind.", "default": "all"},
        },
        "required": ["properties"],
    }


def test_other_parameter_forms_go_to_the_common_normaliser() -> None:
    schema = {"type": "object", "properties": {"q": {"type": "str"}}, "required": ["q"]}
    assert xlam_parameters(schema) == {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]}
    assert xlam_parameters(None) == {"type": "object", "properties": {}}
    assert xlam_parameters({}) == {"type": "object", "properties": {}}


def test_fields_already_decoded_and_json_lines(tmp_path: Path) -> None:
    decoded = {"id": "a-1", "query": "q", "tools": TOOLS, "answers": [{"name": "search", "arguments": "{}"}]}
    lines = [json.dumps(decoded), json.dumps(record(ONE, id=None))]
    path = tmp_path / "part.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    first, second = read_all(path)
    assert isinstance(first, Trajectory) and isinstance(second, Trajectory)
    assert first.id == "xlam-a-1"
    assert [(c.name, c.arguments) for c in first.calls] == [("search", {})]
    assert second.id == "xlam-part-2"  # no id: file and line
    assert second.metadata.origin == f"{path}:line 2"  # type: ignore[attr-defined]


def test_a_call_to_a_function_not_offered_is_kept(tmp_path: Path) -> None:
    [trajectory] = read_all(write(tmp_path, [record([{"name": "teleport", "arguments": {"to": "Mars"}}])]))
    assert isinstance(trajectory, Trajectory)
    assert [call.name for call in trajectory.calls] == ["teleport"]
    assert trajectory.tool("teleport") is None  # checking it is the verification stage's job


def test_the_registry_finds_the_reader(tmp_path: Path) -> None:
    [item] = list(read("xlam", write(tmp_path, [record(ONE)])))
    assert isinstance(item, Trajectory) and item.id == "xlam-7"


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        (["a", "list"], r"expected an object with 'query', 'tools' and 'answers', got list"),
        (record(ONE, query=""), r"query: missing, empty or not a string"),
        (
            record(ONE, tools='[{"name": "get_ip_location", "parameters": {'),
            r"tools: not valid JSON \(.* at column \d+\)",
        ),
        (record(ONE, tools="get_ip_location(ip: str)"), r"tools: not valid JSON"),
        (record(ONE, tools='{"name": "x"}'), r"tools: expected a JSON list, got dict"),
        (record(ONE, tools=json.dumps([{"description": "nameless"}])), r"tools\[0\]: expected an object with a name"),
        (
            record(ONE, tools=json.dumps([{"name": "f", "parameters": {"x": "int"}}])),
            r"tools\[0\] \(f\)\.parameters\.x: got 'int', expected an object with a type",
        ),
        ({**record(ONE), "answers": "[{'name': 'f'}]"}, r"answers: not valid JSON"),
        (record([]), r"answers: an empty list"),
        (record([{"arguments": {}}]), r"answers\[0\]: expected \{'name': \.\.\., 'arguments'"),
        (record([{"name": "f", "arguments": "{bad"}]), r"answers\[0\] \(f\)\.arguments: not valid JSON"),
        (record([{"name": "f", "arguments": [1, 2]}]), r"answers\[0\] \(f\)\.arguments: expected an object, got list"),
        ({"query": "q", "tools": "[]"}, r"answers: missing"),
    ],
)
def test_malformed_records_are_reported_not_raised(tmp_path: Path, bad: Any, reason: str) -> None:
    good = record(ONE)
    items = read_all(write(tmp_path, [good, bad, good]))
    assert [type(item) for item in items] == [Trajectory, Malformed, Trajectory]
    malformed = items[1]
    assert isinstance(malformed, Malformed)
    assert (malformed.source, malformed.file, malformed.position) == ("xlam", str(tmp_path / "xlam.json"), "index 1")
    assert re.search(reason, malformed.reason), malformed.reason


def test_an_invalid_json_file_is_one_report(tmp_path: Path) -> None:
    path = tmp_path / "broken.json"
    path.write_text('[{"id": 1, "query": ', encoding="utf-8")
    [item] = read_all(path)
    assert isinstance(item, Malformed)
    assert (item.position, item.reason.startswith("not valid JSON")) == ("file", True)
