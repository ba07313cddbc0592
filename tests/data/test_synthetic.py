from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from mor.data import SyntheticDataset, Trajectory, generate_synthetic
from mor.data.synthetic import CATALOG, SyntheticToolbox, ValueSplit, catalog_tools, tool_def


def _free_values(trajectories: list[Trajectory]) -> set[str]:
    """JSON of every argument value of a pool-drawn (non-enum, non-boolean) parameter."""
    out = set()
    for trajectory in trajectories:
        for call in trajectory.calls:
            definition = tool_def(call.name)
            for name, value in call.arguments.items():
                if definition.param(name).is_free:
                    out.add(json.dumps(value))
    return out


def _dump(dataset: SyntheticDataset) -> list[str]:
    return [t.model_dump_json() for t in dataset.train + dataset.test]


def test_same_seed_same_data_other_seed_other_data() -> None:
    first = generate_synthetic(tools=12, trajectories=150, seed=5)
    again = generate_synthetic(tools=12, trajectories=150, seed=5)
    other = generate_synthetic(tools=12, trajectories=150, seed=6)
    assert _dump(first) == _dump(again)
    assert _dump(first) != _dump(other)


def test_sizes_and_tools(small_dataset: SyntheticDataset) -> None:
    assert len(small_dataset.train) == 480 and len(small_dataset.test) == 120
    assert [tool.name for tool in small_dataset.tools] == [d.name for d in CATALOG[:24]]
    domains = {d.domain for d in catalog_tools(24)}
    assert {"weather", "finance", "calendar", "math", "travel"} <= domains
    types = {schema["type"] for tool in small_dataset.tools for schema in tool.properties.values()}
    assert types == {"string", "integer", "number", "boolean"}
    assert any("enum" in schema for tool in small_dataset.tools for schema in tool.properties.values())
    assert any(tool.required != list(tool.properties) for tool in small_dataset.tools)  # optional parameters


def test_held_out_argument_values_never_occur_in_training(small_dataset: SyntheticDataset) -> None:
    train_values = _free_values(small_dataset.train)
    test_values = _free_values(small_dataset.test)
    assert len(test_values) > 100
    assert not train_values & test_values
    split = ValueSplit(seed=3, holdout=0.25)
    assert all(split.side(json.loads(value)) == "test" for value in test_values)


def test_held_out_tool_combinations_never_occur_in_training(small_dataset: SyntheticDataset) -> None:
    def combos(trajectories: list[Trajectory], multi_only: bool) -> set[frozenset[str]]:
        out = set()
        for t in trajectories:
            used = frozenset(c.name for c in t.calls)
            if len(used) > 1 or not multi_only:
                out.add(used)
        return out

    train_multi, test_multi = combos(small_dataset.train, True), combos(small_dataset.test, True)
    assert len(test_multi) >= 10
    assert not train_multi & test_multi
    offered_train = {frozenset(tool.name for tool in t.tools) for t in small_dataset.train}
    offered_test = {frozenset(tool.name for tool in t.tools) for t in small_dataset.test}
    assert not offered_train & offered_test


def test_categories(small_dataset: SyntheticDataset) -> None:
    train = Counter(t.metadata.category for t in small_dataset.train)
    test = Counter(t.metadata.category for t in small_dataset.test)
    assert set(train) == {"single", "multi", "chain", "no_tool", "recovery", "give_up"}
    assert set(test) == {"single", "multi", "no_tool", "recovery", "give_up"}  # chains are training-only
    assert all(t.metadata.split == "test" and t.metadata.source == "synthetic" for t in small_dataset.test)


def _check_trajectory(trajectory: Trajectory, box: SyntheticToolbox) -> None:
    roles = [turn.role for turn in trajectory.turns]
    assert roles[0] == "user" and roles[-2:] == ["reasoner", "summarizer"]
    seen_text = trajectory.query or ""
    for index, turn in enumerate(trajectory.turns):
        if turn.role == "executor":
            assert trajectory.turns[index - 1].next_role == "executor"
            (call,) = turn.calls
            assert trajectory.tool(call.name) is not None  # the needed tool is offered
            for name, value in call.arguments.items():
                if tool_def(call.name).param(name).is_free:
                    assert str(value) in seen_text, f"{value!r} does not appear verbatim before the call"
            observation = trajectory.turns[index + 1]
            assert observation.role == "observation" and observation.call_id == call.id
            assert json.loads(observation.content or "") == box.execute(call.name, call.arguments)
            seen_text += observation.content or ""
    assert all(fact in (trajectory.answer or "") for fact in trajectory.metadata.answer_contains)
    assert trajectory.metadata.answer_contains


def test_trajectories_replay_against_the_tools(small_dataset: SyntheticDataset) -> None:
    box = small_dataset.toolbox()
    for trajectory in small_dataset.train + small_dataset.test:
        _check_trajectory(trajectory, box)


def test_error_trajectories(small_dataset: SyntheticDataset) -> None:
    by_category: dict[str, list[Trajectory]] = {}
    for t in small_dataset.train:
        by_category.setdefault(t.metadata.category or "", []).append(t)
    for t in by_category["give_up"]:
        observations = [json.loads(turn.content or "") for turn in t.turns if turn.role == "observation"]
        assert len(observations) == 1 and "error" in observations[0] and "suggestion" not in observations[0]
        assert t.turns[-1].content.startswith("Sorry")
    for t in by_category["recovery"]:
        first, second = (json.loads(turn.content or "") for turn in t.turns if turn.role == "observation")
        assert "suggestion" in first and "error" not in second
        retried = t.calls[1].arguments
        assert all(retried[key] == value for key, value in first["suggestion"].items())
    for t in by_category["no_tool"]:
        assert not t.calls and [turn.role for turn in t.turns] == ["user", "reasoner", "summarizer"]
    for t in by_category["multi"] + by_category["chain"]:
        assert len({call.name for call in t.calls}) == 2


def test_save_and_load(tmp_path: Path, small_dataset: SyntheticDataset) -> None:
    small_dataset.save(tmp_path / "ds")
    loaded = SyntheticDataset.load(tmp_path / "ds")
    assert loaded.train == small_dataset.train and loaded.test == small_dataset.test
    assert loaded.tools == small_dataset.tools and loaded.params["seed"] == 3
    assert sorted(p.name for p in (tmp_path / "ds").iterdir()) == [
        "params.json",
        "test.jsonl",
        "tools.jsonl",
        "train.jsonl",
    ]
    with pytest.raises(FileNotFoundError, match="missing"):
        SyntheticDataset.load(tmp_path)


def test_bad_generator_arguments_name_the_field() -> None:
    with pytest.raises(ValueError, match=r"tools: got 99, the synthetic catalog has \d+ tools"):
        generate_synthetic(tools=99, trajectories=10)
    with pytest.raises(ValueError, match="test_fraction: got 1.5"):
        generate_synthetic(tools=8, trajectories=10, test_fraction=1.5)


def test_toolbox_reports_bad_calls_as_observations() -> None:
    box = SyntheticToolbox()
    assert box.execute("teleport", {})["error"].startswith("unknown function 'teleport'")
    assert "city" in box.execute("get_weather", {})["error"]  # missing required argument
    assert "is not of type 'number'" in box.execute("add_numbers", {"a": "1", "b": 2})["error"]
    assert "is not one of" in box.execute("get_weather", {"city": "Paris", "unit": "kelvin"})["error"]
    assert "additional" in box.execute("get_weather", {"city": "Paris", "colour": "red"})["error"].lower()
    assert box.execute("get_weather", {"city": "Atlantis"}) == {"error": "unknown city 'Atlantis'"}
    assert box.execute("add_numbers", {"a": 2, "b": 2.5}) == {"result": 4.5}
    assert box.execute("get_day_of_week", {"date": "2024-05-17"}) == {"date": "2024-05-17", "day": "Friday"}
    assert box.execute("is_prime", {"number": 97})["verdict"] == "prime"
    assert box.execute("get_weather", {"city": "Paris"}) == box.execute("get_weather", {"city": "Paris"})


def test_catalog_asks_only_mention_declared_parameters() -> None:
    names = [d.name for d in CATALOG]
    assert len(names) == len(set(names)) and len(names) >= 24
    for definition in CATALOG:
        declared = {p.name for p in definition.params}
        for ask in definition.asks:
            assert set(ask.placeholders) | set(ask.fixed) <= declared
            assert {p.name for p in definition.params if p.required} <= set(ask.placeholders) | set(ask.fixed)
