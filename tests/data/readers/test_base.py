"""The readers' shared base: paths, records with their positions, and tool schemas in JSON Schema."""

from __future__ import annotations

from pathlib import Path

import pytest

from mor.data.readers import READERS, expand_paths, iter_json_records, normalise_parameters, reader


def test_paths_name_a_file_a_directory_or_a_glob(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    for name in ("a/one.json", "a/two.jsonl", "a/notes.txt", "three.json"):
        (tmp_path / name).write_text("[]")
    assert expand_paths(tmp_path / "three.json") == [tmp_path / "three.json"]
    assert expand_paths(tmp_path / "a") == [tmp_path / "a/one.json", tmp_path / "a/two.jsonl"]
    assert expand_paths(str(tmp_path / "**" / "*.json")) == [tmp_path / "a/one.json", tmp_path / "three.json"]
    with pytest.raises(FileNotFoundError, match="names no data file"):
        expand_paths(tmp_path / "missing")


def test_records_keep_their_position_and_bad_json_is_reported(tmp_path: Path) -> None:
    lines = tmp_path / "x.jsonl"
    lines.write_text('{"a": 1}\n\n{broken\n[2]\n')
    got = list(iter_json_records(lines))
    assert [position for position, _ in got] == ["line 1", "line 3", "line 4"]
    assert got[0][1] == {"a": 1} and isinstance(got[1][1], ValueError) and got[2][1] == [2]
    array = tmp_path / "y.json"
    array.write_text('[{"b": 1}, {"b": 2}]')
    assert list(iter_json_records(array)) == [("index 0", {"b": 1}), ("index 1", {"b": 2})]
    broken = tmp_path / "z.json"
    broken.write_text("{")
    ((position, error),) = list(iter_json_records(broken))
    assert position == "file" and isinstance(error, ValueError)


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (None, {"type": "object", "properties": {}}),
        (  # xLAM: name -> spec, a parameter without a default is required; one may be named "properties"
            {"properties": {"type": "str", "description": "which"}, "n": {"type": "List[int]", "default": []}},
            {
                "type": "object",
                "required": ["properties"],
                "properties": {
                    "properties": {"type": "string", "description": "which"},
                    "n": {"type": "array", "items": {"type": "integer"}, "default": []},
                },
            },
        ),
        (  # JSON Schema with Python type names, nested objects keep their required list
            {
                "type": "dict",
                "properties": {
                    "at": {"type": "dict", "properties": {"lat": {"type": "float"}}, "required": ["lat", "gone"]}
                },
                "required": ["at"],
            },
            {
                "type": "object",
                "required": ["at"],
                "properties": {
                    "at": {"type": "object", "properties": {"lat": {"type": "number"}}, "required": ["lat"]}
                },
            },
        ),
        (  # a list of named parameters
            [{"name": "q", "type": "string"}, {"name": "k", "type": "int, optional", "default": 3}],
            {
                "type": "object",
                "required": ["q"],
                "properties": {"q": {"type": "string"}, "k": {"type": "integer", "default": 3}},
            },
        ),
        (
            '{"type": "object", "properties": {"s": {"type": "bool"}}}',
            {"type": "object", "properties": {"s": {"type": "boolean"}}},
        ),
    ],
    ids=["none", "xlam_map", "json_schema", "named_list", "json_text"],
)
def test_parameters_become_json_schema(given: object, expected: dict) -> None:
    assert normalise_parameters(given) == expected


@pytest.mark.parametrize("bad", [7, "{not json", [{"type": "string"}], {"x": "str"}])
def test_unusable_parameters_are_refused(bad: object) -> None:
    with pytest.raises(ValueError, match="parameters"):
        normalise_parameters(bad)


def test_every_registered_format_has_its_reader() -> None:
    assert all(callable(reader(name)) for name in READERS)
    with pytest.raises(ValueError, match="known formats"):
        reader("csv")
