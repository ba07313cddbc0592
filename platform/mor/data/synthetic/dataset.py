"""The synthetic data set: tools, train and held-out test trajectories, saved as JSON lines."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mor.data.io import read_tools, read_trajectories, write_tools, write_trajectories
from mor.data.schema import Tool, Trajectory
from mor.data.synthetic.generator import build_trajectories
from mor.data.synthetic.toolbox import SyntheticToolbox

__all__ = ["SyntheticDataset", "generate_synthetic"]

_FILES = {"tools": "tools.jsonl", "train": "train.jsonl", "test": "test.jsonl", "params": "params.json"}


@dataclass
class SyntheticDataset:
    """Tools plus train and held-out test trajectories; `params` records how it was generated."""

    tools: list[Tool]
    train: list[Trajectory]
    test: list[Trajectory]
    params: dict[str, Any] = field(default_factory=dict)

    def toolbox(self) -> SyntheticToolbox:
        """The environment that executes this data set's tools."""
        return SyntheticToolbox.for_tools(self.tools)

    def save(self, directory: str | Path) -> Path:
        """Write tools.jsonl, train.jsonl, test.jsonl and params.json under `directory`."""
        root = Path(directory)
        root.mkdir(parents=True, exist_ok=True)
        write_tools(root / _FILES["tools"], self.tools)
        write_trajectories(root / _FILES["train"], self.train)
        write_trajectories(root / _FILES["test"], self.test)
        (root / _FILES["params"]).write_text(json.dumps(self.params, indent=2, sort_keys=True) + "\n")
        return root

    @classmethod
    def load(cls, directory: str | Path) -> SyntheticDataset:
        """Read a data set written by `save`."""
        root = Path(directory)
        missing = [name for name in _FILES.values() if not (root / name).is_file()]
        if missing:
            raise FileNotFoundError(
                f"{root}: not a synthetic data set, missing {missing}; write one with generate_synthetic(...).save()"
            )
        return cls(
            tools=read_tools(root / _FILES["tools"]),
            train=read_trajectories(root / _FILES["train"]),
            test=read_trajectories(root / _FILES["test"]),
            params=json.loads((root / _FILES["params"]).read_text()),
        )


def generate_synthetic(
    tools: int = 24,
    trajectories: int = 2000,
    seed: int = 0,
    test_fraction: float = 0.1,
    *,
    value_holdout: float = 0.25,
) -> SyntheticDataset:
    """Generate a deterministic synthetic tool-use data set (same arguments, same data).

    `test_fraction` of the trajectories are held out; `value_holdout` is the share of free argument values (cities,
    dates, amounts, ...) reserved for the held-out set.
    """
    tool_list, train, test = build_trajectories(
        tools=tools, trajectories=trajectories, seed=seed, test_fraction=test_fraction, value_holdout=value_holdout
    )
    params = {
        "tools": tools,
        "trajectories": trajectories,
        "seed": seed,
        "test_fraction": test_fraction,
        "value_holdout": value_holdout,
    }
    return SyntheticDataset(tools=tool_list, train=train, test=test, params=params)
