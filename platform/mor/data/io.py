"""Trajectories as JSON lines: the on-disk form every data source is converted to."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

from mor.data.schema import Tool, Trajectory

__all__ = ["iter_trajectories", "write_trajectories", "read_trajectories", "write_tools", "read_tools"]


def write_trajectories(path: str | Path, trajectories: Iterable[Trajectory]) -> int:
    """Write one trajectory per line; returns how many were written."""
    count = 0
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    with target.open("w", encoding="utf-8") as handle:
        for trajectory in trajectories:
            handle.write(trajectory.model_dump_json(exclude_defaults=True) + "\n")
            count += 1
    return count


def iter_trajectories(path: str | Path) -> Iterator[Trajectory]:
    """The trajectories written by `write_trajectories`, one at a time (errors name the file and line)."""
    with Path(path).open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if line.strip():
                try:
                    yield Trajectory.model_validate_json(line)
                except ValueError as error:
                    raise ValueError(f"{path}:{number}: not a trajectory: {error}") from error


def read_trajectories(path: str | Path) -> list[Trajectory]:
    """Read trajectories written by `write_trajectories` (errors name the file and line)."""
    return list(iter_trajectories(path))


def write_tools(path: str | Path, tools: Iterable[Tool]) -> None:
    """Write one tool per line."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text("".join(tool.model_dump_json() + "\n" for tool in tools), encoding="utf-8")


def read_tools(path: str | Path) -> list[Tool]:
    """Read tools written by `write_tools`."""
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    return [Tool.model_validate_json(line) for line in lines if line.strip()]
