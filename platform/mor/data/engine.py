"""Where the data stage's per-record work runs: in this process, or on Ray Data across the cluster.

Both engines run the same steps over the same rows, in order, and stream: rows go in and come out in batches, so
the stage never holds a corpus in memory. A row is a flat record of plain values (`Row`): what the step reads
(`kind`, `payload`) and what it passes on. Input is a list of small rows (e.g. one per file to read) or a `Spool`,
rows written to a directory of JSON-lines shards by an earlier pass (each shard is one unit of parallel work).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypedDict

__all__ = ["Engine", "LocalEngine", "RayDataEngine", "Row", "Spool", "Step", "default_engine", "row"]


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
_COLUMNS: tuple[str, ...] = tuple(Row.__annotations__)


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


@dataclass(frozen=True)
class RayDataEngine:
    """Every step as a Ray Data `map_batches` over the cluster, order kept, streaming back to this process.

    Input rows (e.g. one per file) become one block each, up to `max_blocks`; a spool is read shard by shard.
    Ray must be initialised (`ray.init`) by the caller.
    """

    name: str = "ray"
    batch_size: int = 64
    max_blocks: int = 200

    def run(self, rows: Sequence[Row] | Spool, step: Step, *, workers: int | None = None) -> Iterator[Row]:
        """The rows `step` makes of each input row, in input order. With `workers`, the step runs in that many
        long-lived actors (a step holding a client or a rate limit keeps it); else in tasks."""
        import ray.data

        context = ray.data.DataContext.get_current()
        context.execution_options.preserve_order = True  # the stage's output order is its input order
        context.enable_progress_bars = False  # the job reports its own progress
        if isinstance(rows, Spool):
            if not rows.paths:
                return
            dataset = ray.data.read_text([str(path) for path in rows.paths], override_num_blocks=len(rows.paths))
            from_text = True
        else:
            if not rows:
                return
            dataset = ray.data.from_items(list(rows), override_num_blocks=min(len(rows), self.max_blocks))
            from_text = False
        if workers is None:
            mapped = dataset.map_batches(
                _BatchStep(step, from_text=from_text), batch_size=self.batch_size, batch_format="pyarrow"
            )
        else:
            mapped = dataset.map_batches(
                _BatchStep,
                fn_constructor_kwargs={"step": step, "from_text": from_text},
                concurrency=workers,
                batch_size=self.batch_size,
                batch_format="pyarrow",
            )
        for batch in mapped.iter_batches(batch_format="pyarrow", batch_size=None):
            yield from batch.to_pylist()


class _BatchStep:
    """A step applied to every row of a Ray Data batch (a pyarrow table), its rows back as one table."""

    def __init__(self, step: Step, *, from_text: bool) -> None:
        self.step = step
        self.from_text = from_text

    def __call__(self, batch: Any) -> Any:
        import pyarrow as pa

        out: dict[str, list[Any]] = {column: [] for column in _COLUMNS}
        for item in batch.to_pylist():
            for produced in self.step(json.loads(item["text"]) if self.from_text else item):
                for column in _COLUMNS:
                    out[column].append(produced[column])  # type: ignore[literal-required]
        return pa.table(out, schema=_schema())


def _schema() -> Any:
    import pyarrow as pa

    return pa.schema(
        [
            ("kind", pa.string()),
            ("source", pa.int64()),
            ("payload", pa.large_string()),
            ("key", pa.string()),
            ("info", pa.large_string()),
        ]
    )


def default_engine() -> Engine:
    """Ray Data when this process is connected to Ray (a submitted job), else this process
    (`MOR_DATA_ENGINE=local|ray` overrides)."""
    chosen = os.environ.get("MOR_DATA_ENGINE", "").strip().lower()
    if chosen not in ("", "local", "ray"):
        raise ValueError(f"MOR_DATA_ENGINE: got {chosen!r}, expected local or ray")
    if chosen == "local":
        return LocalEngine()
    if chosen == "ray":
        return RayDataEngine()
    ray = sys.modules.get("ray")  # not imported: not connected
    return RayDataEngine() if ray is not None and ray.is_initialized() else LocalEngine()
