"""The data set of a data spec: every source's trajectories, written once to a content-addressed cache directory."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from mor.data.io import read_tools, read_trajectories, write_tools, write_trajectories
from mor.data.schema import Tool, Trajectory
from mor.data.sources import read_source

__all__ = ["DataSpecLike", "DatasetFiles", "prepare_dataset"]


class DataSpecLike(Protocol):
    """A spec's `data` section (`mor.spec.DataSpec`): sources, each a model with one field named after its format."""

    @property
    def sources(self) -> Sequence[Any]: ...

    def model_dump(self, *, mode: str) -> Mapping[str, Any]: ...


@dataclass
class DatasetFiles:
    """Where a prepared data set lives: tools, train and held-out test trajectories."""

    directory: Path
    tools: list[Tool]
    train: list[Trajectory]
    test: list[Trajectory]


def _digest(payload: object) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def prepare_dataset(data: DataSpecLike, cache_dir: Path) -> DatasetFiles:
    """Read (or reuse from the cache) the trajectories of every source a data spec names."""
    key = _digest(data.model_dump(mode="json"))
    directory = cache_dir / "datasets" / key
    if not (directory / "DONE").is_file():
        tools: list[Tool] = []
        train: list[Trajectory] = []
        test: list[Trajectory] = []
        for source in data.sources:
            for name, options in source.model_dump(mode="python").items():  # one field: the format's name
                read = read_source(name, dict(options))
                tools.extend(read.tools)
                train.extend(read.train)
                test.extend(read.test)
        directory.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{key}-", dir=directory.parent))
        try:
            write_tools(staging / "tools.json", tools)
            write_trajectories(staging / "train.jsonl", train)
            write_trajectories(staging / "test.jsonl", test)
            (staging / "DONE").write_text("ok\n")
            try:
                os.replace(staging, directory)
            except OSError:
                if not (directory / "DONE").is_file():
                    raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return DatasetFiles(
        directory=directory,
        tools=read_tools(directory / "tools.json"),
        train=read_trajectories(directory / "train.jsonl"),
        test=read_trajectories(directory / "test.jsonl"),
    )
