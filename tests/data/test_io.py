from __future__ import annotations

from pathlib import Path

import pytest

from mor.data import SyntheticDataset, read_tools, read_trajectories, write_tools, write_trajectories


def test_trajectories_and_tools_round_trip(tmp_path: Path, small_dataset: SyntheticDataset) -> None:
    path = tmp_path / "train.jsonl"
    assert write_trajectories(path, small_dataset.train[:20]) == 20
    assert read_trajectories(path) == small_dataset.train[:20]
    write_tools(tmp_path / "tools.jsonl", small_dataset.tools)
    assert read_tools(tmp_path / "tools.jsonl") == small_dataset.tools


def test_a_bad_line_is_named_by_file_and_line(tmp_path: Path, small_dataset: SyntheticDataset) -> None:
    path = tmp_path / "bad.jsonl"
    write_trajectories(path, small_dataset.train[:2])
    with path.open("a") as handle:
        handle.write('{"id": "x"}\n')
    with pytest.raises(ValueError, match=r"bad.jsonl:3: not a trajectory"):
        read_trajectories(path)
