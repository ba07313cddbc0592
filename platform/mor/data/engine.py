"""Where the data stage's per-record work runs: in this process, or on Ray Data across the cluster
(`mor.cluster.ray_data.RayDataEngine`, `ray_engine()`: what a submitted job uses).

Both engines run the same steps over the same rows, in order, and stream: rows go in and come out in batches, so
the stage never holds a corpus in memory. A row is a flat record of plain values (`Row`): what the step reads
(`kind`, `payload`) and what it passes on. Input is a list of small rows (e.g. one per file to read) or a `Spool`,
rows written to a directory of JSON-lines shards by an earlier pass (each shard is one unit of parallel work).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypedDict

__all__ = ["COLUMNS", "Engine", "LocalEngine", "Row", "Spool", "Step", "default_engine", "ray_engine", "row"]


class Row(TypedDict):
    """One record between steps: what it is, which source it came from, its data and a key/extra text."""

    kind: str
    source: int
    payload: str
    key: str
    info: str


def row(kind: str, source: int, payload: str = "", key: str = "", info: str = "") -> Row:
    """A row with every column set (Ray Data needs one schema for every batch)."""
    return Row(kind=kind, source=source, payload=payload, key=key, info=info)


Step = Callable[[Row], Iterable[Row]]
#: The columns of every row, in order.
COLUMNS: tuple[str, ...] = tuple(Row.__annotations__)


class Spool:
    """Rows written to a directory as JSON-lines shards of at most `rows_per_shard` rows (write, then `close`)."""

    def __init__(self, directory: Path, rows_per_shard: int = 2000) -> None:
        if rows_per_shard < 1:
            raise ValueError(f"rows_per_shard: got {rows_per_shard}, must be ≥ 1")
        self.directory = directory
        self.rows_per_shard = rows_per_shard
        self.paths: list[Path] = []
        self.rows = 0
        self._handle: Any = None
        directory.mkdir(parents=True, exist_ok=True)

    def write(self, item: Row) -> None:
        """Append a row (a new shard starts every `rows_per_shard` rows)."""
        if self._handle is None or self.rows % self.rows_per_shard == 0:
            self._next_shard()
        self._handle.write(json.dumps(item, ensure_ascii=False) + "\n")
        self.rows += 1

    def _next_shard(self) -> None:
        if self._handle is not None:
            self._handle.close()
        path = self.directory / f"part-{len(self.paths):05d}.jsonl"
        self.paths.append(path)
        self._handle = path.open("w", encoding="utf-8")

    def close(self) -> Spool:
        """Finish writing; returns the spool for reading."""
        if self._handle is not None:
            self._handle.close()
            self._handle = None
        return self

    def __iter__(self) -> Iterator[Row]:
        for path in self.paths:
            with path.open(encoding="utf-8") as handle:
                for line in handle:
                    yield json.loads(line)


class Engine(Protocol):
    """Runs a step over rows, in order, streaming."""

    name: str

    def run(self, rows: Sequence[Row] | Spool, step: Step, *, workers: int | None = None) -> Iterator[Row]: ...


@dataclass(frozen=True)
class LocalEngine:
    """Every step in this process, one row after another."""

    name: str = "local"

    def run(self, rows: Sequence[Row] | Spool, step: Step, *, workers: int | None = None) -> Iterator[Row]:
        """The rows `step` makes of each input row, in input order (`workers` does not apply here)."""
        for item in rows:
            yield from step(item)


def ray_engine() -> Engine:
    """The Ray Data engine (`mor.cluster.ray_data`); the process must be connected to Ray."""
    from mor.cluster.ray_data import RayDataEngine

    return RayDataEngine(columns=COLUMNS)


def default_engine() -> Engine:
    """This process, unless `MOR_DATA_ENGINE=ray` asks for Ray Data (a submitted job passes `ray_engine()`)."""
    chosen = os.environ.get("MOR_DATA_ENGINE", "").strip().lower()
    if chosen not in ("", "local", "ray"):
        raise ValueError(f"MOR_DATA_ENGINE: got {chosen!r}, expected local or ray")
    return ray_engine() if chosen == "ray" else LocalEngine()
