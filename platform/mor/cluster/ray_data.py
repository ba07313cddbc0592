"""The data stage's engine on Ray Data: each step a `map_batches` over the cluster, order kept, results streaming
back to the driver (the `mor.data.engine.Engine` protocol; rows are dicts of the given columns)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

__all__ = ["RayDataEngine"]

Row = dict[str, Any]
Step = Callable[[Row], Iterable[Row]]


@runtime_checkable
class Shards(Protocol):
    """Rows in JSON-lines files, one row per line (`mor.data.engine.Spool`)."""

    paths: list[Path]


@dataclass(frozen=True)
class RayDataEngine:
    """Every step as a Ray Data `map_batches` over the cluster, order kept, streaming back to this process.

    Input rows (e.g. one per file) become one block each, up to `max_blocks`; a spool is read shard by shard.
    Ray must be initialised (`ray.init`) by the caller.
    """

    columns: tuple[str, ...]  # every row's columns (`mor.data.engine.COLUMNS`), all text except `source`
    name: str = "ray"
    batch_size: int = 64
    max_blocks: int = 200

    def run(self, rows: Sequence[Row] | Shards, step: Step, *, workers: int | None = None) -> Iterator[Row]:
        """The rows `step` makes of each input row, in input order. With `workers`, the step runs in that many
        long-lived actors (a step holding a client or a rate limit keeps it); else in tasks."""
        import ray.data

        context = ray.data.DataContext.get_current()
        context.execution_options.preserve_order = True  # the stage's output order is its input order
        context.enable_progress_bars = False  # the job reports its own progress
        if isinstance(rows, Shards):
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
                _BatchStep(step, from_text=from_text, columns=self.columns),
                batch_size=self.batch_size,
                batch_format="pyarrow",
            )
        else:
            mapped = dataset.map_batches(
                _BatchStep,
                fn_constructor_kwargs={"step": step, "from_text": from_text, "columns": self.columns},
                concurrency=workers,
                batch_size=self.batch_size,
                batch_format="pyarrow",
            )
        for batch in mapped.iter_batches(batch_format="pyarrow", batch_size=None):
            yield from batch.to_pylist()


class _BatchStep:
    """A step applied to every row of a Ray Data batch (a pyarrow table), its rows back as one table."""

    def __init__(self, step: Step, *, from_text: bool, columns: tuple[str, ...]) -> None:
        self.step = step
        self.from_text = from_text
        self.columns = columns

    def __call__(self, batch: Any) -> Any:
        import pyarrow as pa

        out: dict[str, list[Any]] = {column: [] for column in self.columns}
        for item in batch.to_pylist():
            for produced in self.step(json.loads(item["text"]) if self.from_text else item):
                for column in self.columns:
                    out[column].append(produced[column])
        schema = pa.schema([(c, pa.int64() if c == "source" else pa.large_string()) for c in self.columns])
        return pa.table(out, schema=schema)
