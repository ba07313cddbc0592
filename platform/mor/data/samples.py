"""Role samples on disk: Parquet files of rendered trajectories (token ids, one role id and one label per token),
written as they come, with their token statistics.

Columns: `input_ids` (list<int32>), `role_ids` (list<int16>: the index of the role in the roles the samples were
rendered with, see `render.Renderer`), `labels` (list<int32>, -100 where nothing is learned), `trajectory_id`,
`source` (the format the trajectory came from). Training reads the first three (`read_samples`).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from mor.data.engine import Engine, LocalEngine, Row, Spool, row
from mor.data.render import IGNORE_INDEX, Encoded, FitReport, Renderer, fit_samples
from mor.data.schema import Trajectory

__all__ = [
    "SAMPLE_COLUMNS",
    "SampleWriter",
    "TokenStats",
    "read_samples",
    "render_identity",
    "role_segments",
    "sample_rows",
    "spool_trajectories",
    "write_samples",
]

#: The columns of a samples file, in order.
SAMPLE_COLUMNS: tuple[str, ...] = ("input_ids", "role_ids", "labels", "trajectory_id", "source")


def _schema() -> Any:
    import pyarrow as pa

    return pa.schema(
        [
            ("input_ids", pa.list_(pa.int32())),
            ("role_ids", pa.list_(pa.int16())),
            ("labels", pa.list_(pa.int32())),
            ("trajectory_id", pa.string()),
            ("source", pa.string()),
        ]
    )


@dataclass
class TokenStats:
    """Token statistics of a samples file: sequences, tokens, learned tokens per role, sequence lengths, and what
    fitting to `max_seq_len` did."""

    roles: Sequence[str]
    sequences: int = 0
    tokens: int = 0
    learned_by_role: Counter[str] = field(default_factory=Counter)
    tokens_by_role: Counter[str] = field(default_factory=Counter)
    sequences_by_source: Counter[str] = field(default_factory=Counter)
    lengths: list[int] = field(default_factory=list)
    fit: FitReport = field(default_factory=FitReport)

    def add(self, sample: Encoded, source: str) -> None:
        """Count one written sample."""
        self.sequences += 1
        self.tokens += len(sample.input_ids)
        self.lengths.append(len(sample.input_ids))
        self.sequences_by_source[source] += 1
        for role_id, label in zip(sample.role_ids, sample.labels, strict=True):
            role = self.roles[role_id] if 0 <= role_id < len(self.roles) else str(role_id)
            self.tokens_by_role[role] += 1
            if label != IGNORE_INDEX:
                self.learned_by_role[role] += 1

    def merge_fit(self, report: FitReport) -> None:
        """Add what fitting one batch of samples to `max_seq_len` did."""
        self.fit.kept += report.kept
        self.fit.cut += report.cut
        self.fit.dropped += report.dropped
        self.fit.longest = max(self.fit.longest, report.longest)
        self.fit.dropped_ids.extend(report.dropped_ids[: max(0, 100 - len(self.fit.dropped_ids))])

    def to_dict(self) -> dict[str, Any]:
        """Plain data for a manifest."""
        ordered = sorted(self.lengths)

        def percentile(q: float) -> int:
            return ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)] if ordered else 0

        return {
            "sequences": self.sequences,
            "tokens": self.tokens,
            "learned_tokens": sum(self.learned_by_role.values()),
            "learned_tokens_by_role": dict(self.learned_by_role),
            "tokens_by_role": dict(self.tokens_by_role),
            "sequences_by_source": dict(self.sequences_by_source),
            "length": {
                "mean": round(self.tokens / self.sequences, 1) if self.sequences else 0.0,
                "p50": percentile(0.5),
                "p95": percentile(0.95),
                "max": ordered[-1] if ordered else 0,
            },
            "fit": {
                "kept": self.fit.kept,
                "cut": self.fit.cut,
                "dropped": self.fit.dropped,
                "longest": self.fit.longest,
                "dropped_ids": list(self.fit.dropped_ids),
            },
        }


class SampleWriter:
    """Writes samples to a Parquet file in row groups as they come; the file appears complete at `close` (written
    beside it and renamed), or not at all when the writing fails."""

    def __init__(self, path: Path, roles: Sequence[str], *, row_group: int = 1024) -> None:
        import pyarrow.parquet as pq

        self.path = path
        self.stats = TokenStats(roles=list(roles))
        self._row_group = row_group
        self._rows: dict[str, list[Any]] = {column: [] for column in SAMPLE_COLUMNS}
        path.parent.mkdir(parents=True, exist_ok=True)
        self._partial = path.with_name(f".{path.name}.partial")
        self._writer = pq.ParquetWriter(str(self._partial), _schema(), compression="zstd")

    def write(self, sample: Encoded, source: str) -> None:
        """Append one sample (from the format `source`)."""
        self._rows["input_ids"].append(sample.input_ids)
        self._rows["role_ids"].append(sample.role_ids)
        self._rows["labels"].append(sample.labels)
        self._rows["trajectory_id"].append(sample.trajectory_id)
        self._rows["source"].append(source)
        self.stats.add(sample, source)
        if len(self._rows["source"]) >= self._row_group:
            self._flush()

    def _flush(self) -> None:
        import pyarrow as pa

        if self._rows["source"]:
            self._writer.write_table(pa.table(self._rows, schema=_schema()))
            self._rows = {column: [] for column in SAMPLE_COLUMNS}

    def close(self) -> None:
        """Write what is buffered and put the file in place."""
        self._flush()
        self._writer.close()
        os.replace(self._partial, self.path)

    def abort(self) -> None:
        """Drop the partial file."""
        self._writer.close()
        self._partial.unlink(missing_ok=True)

    def __enter__(self) -> SampleWriter:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        if kind is None:
            self.close()
        else:
            self.abort()


def read_samples(path: str | Path) -> list[dict[str, list[int]]]:
    """The training samples of a samples file: input_ids, role_ids and labels of each."""
    import pyarrow.parquet as pq

    table = pq.read_table(str(path), columns=["input_ids", "role_ids", "labels"])
    return table.to_pylist()


def sample_rows(path: str | Path, count: int) -> list[dict[str, Any]]:
    """The first `count` rows of a samples file, every column."""
    import pyarrow.parquet as pq

    parquet = pq.ParquetFile(str(path))
    rows: list[dict[str, Any]] = []
    for batch in parquet.iter_batches(batch_size=max(1, count)):
        rows.extend(batch.to_pylist())
        if len(rows) >= count:
            break
    return rows[:count]


def render_identity(tokenizer: Any, roles: Sequence[str], max_seq_len: int) -> str:
    """What rendered samples depend on besides their trajectories: the tokenizer's full definition, the roles (in
    order) and the sequence limit. Equal identities render the same trajectories to the same samples."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    definition = backend.to_str() if backend is not None else json.dumps(tokenizer.get_vocab(), sort_keys=True)
    digest = hashlib.sha256(definition.encode())
    digest.update(json.dumps([list(roles), int(max_seq_len)]).encode())
    return digest.hexdigest()[:16]


def spool_trajectories(trajectories: Iterable[Trajectory], directory: Path, rows_per_shard: int = 500) -> Spool:
    """Trajectories as a spool of `trajectory` rows (shards an engine renders in parallel)."""
    spool = Spool(directory, rows_per_shard)
    for trajectory in trajectories:
        spool.write(row("trajectory", 0, trajectory.model_dump_json(exclude_defaults=True)))
    return spool.close()


@dataclass(frozen=True)
class _RenderStep:
    """A trajectory rendered and fitted to `max_seq_len`: a `sample` row (or none when it is dropped), with what
    fitting did in `info`."""

    tokenizer: Any
    roles: tuple[str, ...]
    max_seq_len: int
    overflow: str

    def __call__(self, item: Row) -> Iterator[Row]:
        trajectory = Trajectory.model_validate_json(item["payload"])
        encoded = Renderer(self.tokenizer, self.roles).encode(trajectory)
        kept, report = fit_samples([encoded], self.max_seq_len, overflow=self.overflow)  # type: ignore[arg-type]
        fit = json.dumps({"kept": report.kept, "cut": report.cut, "dropped": report.dropped, "longest": report.longest})
        if not kept:
            yield row("dropped", item["source"], trajectory.id, info=fit)
            return
        sample = kept[0]
        payload = {
            "input_ids": sample.input_ids,
            "role_ids": sample.role_ids,
            "labels": sample.labels,
            "trajectory_id": trajectory.id,
        }
        yield row("sample", item["source"], json.dumps(payload), key=trajectory.metadata.source, info=fit)


def write_samples(
    trajectories: Iterable[Trajectory] | Spool,
    path: Path,
    *,
    tokenizer: Any,
    roles: Sequence[str],
    max_seq_len: int,
    overflow: str = "drop",
    engine: Engine | None = None,
) -> TokenStats:
    """Render every trajectory with `tokenizer`, fit it to `max_seq_len` (`render.fit_samples`) and write the
    samples to the Parquet file `path` as they come; returns their statistics. With an engine other than the
    local one, `trajectories` must be a spool (`spool_trajectories`)."""
    engine = engine or LocalEngine()
    if isinstance(trajectories, Spool):
        rows: Any = trajectories
    else:
        rows = (row("trajectory", 0, t.model_dump_json(exclude_defaults=True)) for t in trajectories)
    step = _RenderStep(tokenizer, tuple(roles), max_seq_len, overflow)
    with SampleWriter(path, roles) as writer:
        for item in engine.run(rows, step):
            fit = json.loads(item["info"])
            writer.stats.merge_fit(
                FitReport(
                    kept=fit["kept"],
                    cut=fit["cut"],
                    dropped=fit["dropped"],
                    longest=fit["longest"],
                    dropped_ids=[item["payload"]] if item["kind"] == "dropped" else [],
                )
            )
            if item["kind"] == "sample":
                sample = json.loads(item["payload"])
                encoded = Encoded(
                    sample["input_ids"], sample["role_ids"], sample["labels"], trajectory_id=sample["trajectory_id"]
                )
                writer.write(encoded, item["key"])
    return writer.stats


def role_segments(sample: dict[str, Any], tokenizer: Any, roles: Sequence[str]) -> list[dict[str, Any]]:
    """A sample as its runs of tokens of one role and one kind (learned or read), decoded: what `mor data inspect`
    shows coloured per role, and what a reader checks the role tagging by."""
    segments: list[dict[str, Any]] = []
    run: list[int] = []
    current: tuple[int, bool] | None = None
    triples = zip(sample["input_ids"], sample["role_ids"], sample["labels"], strict=True)
    for token, role_id, label in triples:
        kind = (int(role_id), label != IGNORE_INDEX)
        if current is not None and kind != current:
            segments.append(_segment(run, current, tokenizer, roles))
            run = []
        current = kind
        run.append(int(token))
    if current is not None:
        segments.append(_segment(run, current, tokenizer, roles))
    return segments


def _segment(tokens: list[int], kind: tuple[int, bool], tokenizer: Any, roles: Sequence[str]) -> dict[str, Any]:
    role_id, learned = kind
    role = roles[role_id] if 0 <= role_id < len(roles) else str(role_id)
    text = tokenizer.decode(tokens, skip_special_tokens=False, clean_up_tokenization_spaces=False)
    return {"role": role, "learned": learned, "tokens": len(tokens), "text": text}
