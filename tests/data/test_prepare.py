"""The data set of a spec from file sources: readers through the source registry, a seeded split, limits, and
malformed records reported (file, position, reason) without stopping the job."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mor.data import render_text
from mor.data.prepare import prepare_dataset
from mor.spec import TrainJobSpec, parse_spec
from mor_testing import shared_dataset


def _spec(sources: str, tmp_path: Path, extra: str = "") -> TrainJobSpec:
    text = f"kind: train\nname: t\nbase_model: {{builtin: tiny-llama}}\ndata:\n  sources:\n{sources}{extra}"
    spec = parse_spec(text, source="spec.yaml", spec_dir=tmp_path)
    assert isinstance(spec, TrainJobSpec)
    return spec


def _broken_openai_log(tmp_path: Path) -> Path:
    good = {
        "messages": [
            {"role": "user", "content": "What is 2+3?"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {"id": "a", "type": "function", "function": {"name": "add", "arguments": '{"x": 2, "y": 3}'}}
                ],
            },
            {"role": "tool", "tool_call_id": "a", "content": "5"},
            {"role": "assistant", "content": "It is 5."},
        ],
        "tools": [
            {
                "type": "function",
                "function": {
                    "name": "add",
                    "parameters": {
                        "type": "object",
                        "properties": {"x": {"type": "integer"}, "y": {"type": "integer"}},
                    },
                },
            }
        ],
    }
    lines = [
        json.dumps(good),
        "{not json",
        json.dumps({"messages": [{"role": "tool", "content": "5"}]}),
        json.dumps(good),
    ]
    path = tmp_path / "logs" / "chat.jsonl"
    path.parent.mkdir()
    path.write_text("\n".join(lines) + "\n")
    return path


def test_file_sources_are_read_split_and_reported(tmp_path: Path) -> None:
    glaive = shared_dataset("glaive-function-calling-v2") / "glaive_toolcall_en_demo.json"
    _broken_openai_log(tmp_path)
    sources = (
        f"    - sharegpt: {{path: {glaive}, limit: 120}}\n"
        "    - openai_messages: {path: logs}\n"  # relative to the spec's directory
        "    - synthetic: {tools: 6, trajectories: 30, seed: 2}\n"
    )
    spec = _spec(sources, tmp_path, "  test_fraction: 0.25\n  seed: 3\n")
    dataset = prepare_dataset(spec.data, tmp_path / "cache")
    by_format = {entry["format"]: entry for entry in dataset.report["sources"]}
    sharegpt = by_format["sharegpt"]
    used = sharegpt["train"] + sharegpt["test"]
    assert used + sharegpt["duplicates"] + sharegpt["failed_verification"]["dropped"] == 120 and used > 100
    assert 0.15 * used <= sharegpt["test"] <= 0.35 * used  # a quarter, give or take
    chats = by_format["openai_messages"]
    assert chats["train"] + chats["test"] == 1 and chats["duplicates"] == 1  # the same chat twice
    assert by_format["openai_messages"]["malformed"] == 2 and dataset.malformed == 2
    assert by_format["synthetic"]["train"] + by_format["synthetic"]["test"] == 30
    rows = [json.loads(line) for line in (dataset.directory / "malformed.jsonl").read_text().splitlines()]
    assert [(Path(row["file"]).name, row["position"]) for row in rows] == [
        ("chat.jsonl", "line 2"),
        ("chat.jsonl", "line 3"),
    ]
    assert "not valid JSON" in rows[0]["reason"] and rows[1]["reason"]
    ids = [t.id for t in dataset.train + dataset.test]
    assert len(ids) == len(set(ids)) == used + 1 + 30
    assert {t.metadata.source for t in dataset.train} == {"sharegpt", "openai_messages", "synthetic"}
    for trajectory in dataset.train[:50]:
        render_text(trajectory)

    again = prepare_dataset(_spec(sources, tmp_path, "  test_fraction: 0.25\n  seed: 3\n").data, tmp_path / "cache")
    assert again.directory == dataset.directory and [t.id for t in again.test] == [t.id for t in dataset.test]
    reseeded = prepare_dataset(_spec(sources, tmp_path, "  test_fraction: 0.25\n  seed: 4\n").data, tmp_path / "cache")
    assert [t.id for t in reseeded.test] != [t.id for t in dataset.test]


def test_trajectories_without_agent_turns_are_counted_not_used(tmp_path: Path) -> None:
    toolbench = shared_dataset("toolbench")
    spec = _spec(f"    - toolbench: {{path: {toolbench / 'data' / 'query'}}}\n", tmp_path)
    dataset = prepare_dataset(spec.data, tmp_path / "cache")
    (entry,) = dataset.report["sources"]
    assert entry["without_agent_turns"] == 3 and entry["train"] == entry["test"] == 0


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("    - sharegpt: {path: nowhere.json}\n", "data.sources.0.sharegpt.path: got 'nowhere.json'"),
        ("    - sharegpt: {pth: x}\n", "data.sources.0.sharegpt.pth: unknown key"),
        ("    - glaiv: {path: x}\n", "exactly one key, its format"),
        ("    - toolace: {path: ., system_prompt: all}\n", "data.sources.0.toolace.system_prompt"),
    ],
)
def test_bad_file_sources_name_the_field(tmp_path: Path, source: str, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace(".", r"\.").replace("(", r"\(")):
        _spec(source, tmp_path)


def test_weights_repeat_or_thin_a_source_and_duplicates_across_sources_are_dropped(tmp_path: Path) -> None:
    glaive = shared_dataset("glaive-function-calling-v2") / "glaive_toolcall_en_demo.json"
    sources = (
        f"    - sharegpt: {{path: {glaive}, limit: 100, weight: 2.0}}\n"
        f"    - sharegpt: {{path: {glaive}, limit: 40, weight: 0.5}}\n"
    )
    dataset = prepare_dataset(_spec(sources, tmp_path, "  test_fraction: 0.2\n").data, tmp_path / "cache")
    first, second = dataset.report["sources"]
    assert second["duplicates"] == 40 and second["train"] == second["test"] == 0  # all already in the first
    unique = 100 - first["duplicates"] - first["failed_verification"]["dropped"]
    assert first["train"] == 2 * (unique - first["test"])
    ids = [t.id for t in dataset.train]
    assert len(ids) == len(set(ids)) and sum(i.endswith("#1") for i in ids) == first["train"] // 2

    thinned = prepare_dataset(
        _spec(f"    - sharegpt: {{path: {glaive}, weight: 0.5}}\n", tmp_path, "  test_fraction: 0.0\n").data,
        tmp_path / "cache",
    )
    (entry,) = thinned.report["sources"]
    kept = 300 - entry["duplicates"] - entry["failed_verification"]["dropped"]
    assert 0.35 * kept < entry["train"] < 0.65 * kept


def test_completion_fills_thoughts_by_rule_and_drops_what_an_endpoint_cannot_complete(tmp_path: Path) -> None:
    glaive = shared_dataset("glaive-function-calling-v2") / "glaive_toolcall_en_demo.json"
    source = f"    - sharegpt: {{path: {glaive}, limit: 20}}\n"
    ruled = prepare_dataset(_spec(source, tmp_path, "  complete: {}\n").data, tmp_path / "cache")
    (entry,) = ruled.report["sources"]
    assert entry["completion"]["failed"] == 0 and entry["completion"]["filled"]["thought by rule"] > 20
    for trajectory in ruled.train + ruled.test:
        assert all(turn.thought for turn in trajectory.turns if turn.role == "reasoner")
        assert "thought" not in trajectory.metadata.missing and trajectory.metadata.completed

    unreachable = (
        "  complete: {endpoint: 'http://127.0.0.1:9/v1', model: m, max_attempts: 1, requests_per_second: 1000}\n"
    )
    failed = prepare_dataset(_spec(source, tmp_path, unreachable).data, tmp_path / "cache")
    (entry,) = failed.report["sources"]
    attempted = 20 - entry["duplicates"]
    assert entry["completion"]["failed"] == attempted and entry["train"] == entry["test"] == 0
    rows = [json.loads(line) for line in (failed.directory / "dropped.jsonl").read_text().splitlines()]
    assert len(rows) == attempted and all(row["codes"] == ["completion_failed"] for row in rows)
    assert "127.0.0.1:9" in rows[0]["reasons"][0]
