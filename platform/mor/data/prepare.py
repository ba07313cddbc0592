"""The data set of a data spec: every source's trajectories, written once to a content-addressed cache directory.

File sources (the readers of `mor.data.readers`) go through these steps:
* records a reader could not use are written to `malformed.jsonl` with their file, position and reason, and
  counted per source in `report.json`; they never stop the job;
* trajectories with no agent turn (e.g. ToolBench queries, with no calls or answer yet) have nothing to learn
  from: counted, not used;
* duplicates within and across sources (same user messages, calls and answers) are dropped, the first kept
  (`deduplicate`);
* with `complete`, missing thoughts and answers are filled (`mor.data.complete`: an LLM endpoint, or rules), each
  filled field marked in the trajectory's `metadata.completed`; a record whose completion fails is dropped with its
  reason;
* unless `verify` is off, trajectories failing the rule checks of `mor.data.verify` are dropped and listed with
  their reasons in `dropped.jsonl`;
* the rest is split into train and held-out test by the spec's `seed` and `test_fraction` (by trajectory id, so
  adding a source does not move the others' items), and the training part weighted (`weight`).
The synthetic source splits itself; a stored data set (`{dataset: NAME@VERSION}`, written by a `kind: data` job)
keeps the split and checks it was written with.

The stage streams: the per-record work (reading, completion, verification, split) runs on an engine
(`mor.data.engine`: Ray Data in a submitted job, this process otherwise) and every result is written as it comes,
so memory holds the deduplication keys, not the corpus. Order is kept: the output is the same on either engine.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any, Protocol

from mor.data.complete import (
    Completer,
    LLMCompleterConfig,
    RuleCompleterConfig,
    build_completer,
    complete_one,
)
from mor.data.engine import Engine, LocalEngine, Row, Spool, default_engine, row
from mor.data.io import iter_trajectories, read_tools, read_trajectories, write_tools
from mor.data.readers import Malformed, expand_paths, read
from mor.data.schema import Tool, Trajectory
from mor.data.sources import read_source
from mor.data.store import StoredDataset, resolve_dataset
from mor.data.verify import CODES, verify_all

__all__ = ["DataSpecLike", "DatasetFiles", "Progress", "dedup_key", "prepare_dataset", "split_of"]

#: Called with a stage name and how many records it has handled so far.
Progress = Callable[[str, int], None]


class DataSpecLike(Protocol):
    """A spec's `data` section (`mor.spec.DataSpec`): sources, each a model with one field named after its format."""

    @property
    def sources(self) -> Sequence[Any]: ...

    @property
    def test_fraction(self) -> float: ...

    @property
    def seed(self) -> int: ...

    @property
    def verify(self) -> bool: ...

    @property
    def complete(self) -> Any: ...

    @property
    def deduplicate(self) -> bool: ...

    @property
    def verify_ignore(self) -> Sequence[str]: ...

    def model_dump(self, *, mode: str) -> Mapping[str, Any]: ...


@dataclass
class DatasetFiles:
    """Where a prepared data set lives: tools, train and held-out test trajectories (read from the files when first
    used; `iter_train` streams them instead)."""

    directory: Path
    report: dict[str, Any] = field(default_factory=dict)  # per source: trajectories, train, test, malformed
    train_override: list[Trajectory] | None = None  # set by `with_train`

    @property
    def tools(self) -> list[Tool]:
        """The tools the sources listed apart from their trajectories."""
        return read_tools(self.directory / "tools.json")

    @property
    def train(self) -> list[Trajectory]:
        """The training trajectories."""
        if self.train_override is None:
            self.train_override = read_trajectories(self.directory / "train.jsonl")
        return self.train_override

    @property
    def test(self) -> list[Trajectory]:
        """The held-out trajectories."""
        return read_trajectories(self.directory / "test.jsonl")

    def iter_train(self) -> Iterator[Trajectory]:
        """The training trajectories one at a time."""
        if self.train_override is not None:
            return iter(self.train_override)
        return iter_trajectories(self.directory / "train.jsonl")

    def with_train(self, train: list[Trajectory]) -> DatasetFiles:
        """The same data set with another training part (e.g. decontaminated)."""
        return DatasetFiles(directory=self.directory, report=self.report, train_override=train)

    @property
    def malformed(self) -> int:
        """Records the sources could not use (their reasons are in `directory / "malformed.jsonl"`)."""
        return sum(int(entry.get("malformed", 0)) for entry in self.report.get("sources", []))


def _digest(payload: object) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def prepare_dataset(
    data: DataSpecLike,
    cache_dir: Path,
    datasets_dir: Path | None = None,
    *,
    engine: Engine | None = None,
    progress: Progress | None = None,
) -> DatasetFiles:
    """Read (or reuse from the cache) the trajectories of every source a data spec names; `datasets_dir` holds the
    data sets `{dataset: NAME@VERSION}` sources name (`mor.data.store`). `engine` runs the per-record work
    (default: `default_engine()`); `progress` hears how far each pass is."""
    stored = {
        ref: _stored(ref, datasets_dir)
        for ref in (dict(source.model_dump(mode="python")).get("dataset") for source in data.sources)
        if ref is not None
    }
    key = _digest([data.model_dump(mode="json"), {ref: str(found.directory) for ref, found in stored.items()}])
    directory = cache_dir / "datasets" / key
    if not (directory / "DONE").is_file():
        directory.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{key}-", dir=directory.parent))
        try:
            build = _Build(data, staging, cache_dir, engine or default_engine(), progress or (lambda stage, n: None))
            report = build.run(stored)
            (staging / "report.json").write_text(json.dumps(report, indent=2, ensure_ascii=False))
            (staging / "DONE").write_text("ok\n")
            try:
                os.replace(staging, directory)
            except OSError:
                if not (directory / "DONE").is_file():
                    raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    report_file = directory / "report.json"
    return DatasetFiles(
        directory=directory, report=json.loads(report_file.read_text()) if report_file.is_file() else {}
    )


class _Build:
    """One preparation: every source in spec order, written into `directory` as it streams."""

    def __init__(self, data: DataSpecLike, directory: Path, cache_dir: Path, engine: Engine, progress: Progress):
        self.data = data
        self.directory = directory
        self.cache_dir = cache_dir
        self.engine = engine
        self.progress = progress
        self.seen: set[str] = set()  # deduplication keys, across sources
        self.tools: list[Tool] = []
        self.files: dict[str, IO[str]] = {}

    def run(self, stored: Mapping[str, StoredDataset]) -> dict[str, Any]:
        """Write train/test/malformed/dropped/tools; return the report."""
        report: dict[str, Any] = {"engine": self.engine.name, "sources": []}
        for name in ("train", "test", "malformed", "dropped"):
            self.files[name] = (self.directory / f"{name}.jsonl").open("w", encoding="utf-8")
        try:
            for index, source in enumerate(self.data.sources):
                for name, options in source.model_dump(mode="python").items():  # one field: the format's name
                    weight = float(options.pop("weight", 1.0)) if isinstance(options, dict) else 1.0
                    if name == "dataset":  # already verified and split by the data job that wrote it
                        entry = self._stored(stored[options])
                    elif name in _file_formats():
                        entry = self._file_source(index, name, dict(options), weight)
                    else:
                        entry = self._generated(name, dict(options))
                    report["sources"].append({"format": name, "weight": weight, **entry})
        finally:
            for handle in self.files.values():
                handle.close()
            shutil.rmtree(self.directory / ".spool", ignore_errors=True)
        write_tools(self.directory / "tools.json", self.tools)
        return report

    def _write(self, name: str, line: str) -> None:
        self.files[name].write(line + "\n")

    def _write_trajectory(self, name: str, trajectory: Trajectory) -> None:
        self._write(name, trajectory.model_dump_json(exclude_defaults=True))

    def _stored(self, found: StoredDataset) -> dict[str, Any]:
        if (found.directory / "tools.json").is_file():
            self.tools.extend(read_tools(found.directory / "tools.json"))
        counts = {}
        for part in ("train", "test"):
            counts[part] = 0
            for trajectory in iter_trajectories(found.directory / f"{part}.jsonl"):
                self._write_trajectory(part, trajectory)
                counts[part] += 1
        return {"path": str(found.directory), **counts, "malformed": 0}

    def _generated(self, name: str, options: dict[str, Any]) -> dict[str, Any]:
        """A source that makes its own data and split (the synthetic generator, registered sources)."""
        made = read_source(name, options)
        self.tools.extend(made.tools)
        for part, trajectories in (("train", made.train), ("test", made.test)):
            for trajectory in trajectories:
                self._write_trajectory(part, trajectory)
        for record in made.malformed:
            self._write("malformed", json.dumps(asdict(record), ensure_ascii=False))
        return {
            "path": options.get("path"),
            "train": len(made.train),
            "test": len(made.test),
            "malformed": len(made.malformed),
            "malformed_reasons": _reason_counts(made.malformed),
        }

    def _file_source(self, index: int, name: str, options: dict[str, Any], weight: float) -> dict[str, Any]:
        """A reader's source: read (per file), deduplicate here, then complete, verify and split (per record)."""
        path, limit = options.pop("path"), options.pop("limit", None)
        reader_options = {key: value for key, value in options.items() if value is not None}
        files = [
            row("file", index, json.dumps({"format": name, "file": str(file), "options": reader_options}))
            for file in expand_paths(path)
        ]
        counts: Counter[str] = Counter()
        malformed: list[str] = []
        spool = Spool(self.directory / ".spool" / str(index))
        for item in self.engine.run(files, _ReadStep(self.data.deduplicate)):
            if item["kind"] == "malformed":
                counts["malformed"] += 1
                malformed.append(json.loads(item["payload"])["reason"])
                self._write("malformed", item["payload"])
                continue
            counts["read"] += 1
            if item["kind"] == "empty":
                counts["without_agent_turns"] += 1
            elif item["key"] and item["key"] in self.seen:
                counts["duplicates"] += 1
            else:
                self.seen.add(item["key"])
                spool.write(item)
            if counts["read"] % 1000 == 0:
                self.progress(f"read {name}", counts["read"])
            if limit is not None and counts["read"] >= limit:
                break
        check = _CheckStep(
            completer=self._completer(),
            parts=tuple(self.data.complete.parts) if self.data.complete is not None else (),
            verify=self.data.verify,
            ignore=tuple(self.data.verify_ignore),
            test_fraction=self.data.test_fraction,
            seed=self.data.seed,
            weight=weight,
        )
        workers = self._completion_workers()
        filled: Counter[str] = Counter()
        problems: Counter[str] = Counter()
        for done, item in enumerate(self.engine.run(spool.close(), check, workers=workers), start=1):
            kind = item["kind"]
            info = json.loads(item["info"]) if item["info"] else {}
            filled.update(info.get("filled", {}))
            if kind in ("train", "test"):
                counts[kind] += 1
                self._write(kind, item["payload"])
            else:
                counts[kind] += 1  # dropped (verification) or completion_failed
                problems.update(info.get("problems", {}))
                self._write("dropped", item["payload"])
            if done % 1000 == 0:
                self.progress(f"check {name}", done)
        shutil.rmtree(spool.directory, ignore_errors=True)
        return {
            "path": path,
            "train": counts["train"],
            "test": counts["test"],
            "malformed": counts["malformed"],
            "without_agent_turns": counts["without_agent_turns"],
            "duplicates": counts["duplicates"],
            "failed_verification": (
                {"dropped": counts["dropped"], "problems": {code: problems[code] for code in CODES if problems[code]}}
                if self.data.verify
                else {}
            ),
            "completion": (
                {"filled": dict(filled), "failed": counts["completion_failed"]}
                if self.data.complete is not None
                else {}
            ),
            "malformed_reasons": _reason_counts(malformed),
        }

    def _completer(self) -> Completer | None:
        settings = self.data.complete
        if settings is None:
            return None
        if not settings.endpoint:
            return build_completer(RuleCompleterConfig())
        workers = self._completion_workers() or 1
        rate = settings.requests_per_second
        return build_completer(
            LLMCompleterConfig(
                base_url=settings.endpoint,
                model=settings.model,
                api_key_env=settings.api_key_env,
                cache_dir=str(self.cache_dir / "completions"),
                requests_per_second=rate / workers if rate else None,  # the limit is per worker process
                max_attempts=settings.max_attempts,
            )
        )

    def _completion_workers(self) -> int | None:
        """Worker processes asking an LLM endpoint (each keeps its client and its share of the rate limit)."""
        settings = self.data.complete
        if settings is None or not settings.endpoint or isinstance(self.engine, LocalEngine):
            return None
        return int(settings.workers)


def _file_formats() -> frozenset[str]:
    from mor.data.readers import READERS

    return frozenset(READERS)


@dataclass(frozen=True)
class _ReadStep:
    """A file's records: `malformed` rows (the report), `empty` rows (no agent turn to learn from) and `trajectory`
    rows with their deduplication key."""

    deduplicate: bool

    def __call__(self, item: Row) -> Iterator[Row]:
        task = json.loads(item["payload"])
        source = item["source"]
        for record in read(task["format"], task["file"], **task["options"]):
            if isinstance(record, Malformed):
                yield row("malformed", source, json.dumps(asdict(record), ensure_ascii=False))
            elif not any(not turn.is_context for turn in record.turns):
                yield row("empty", source)
            else:
                key = dedup_key(record) if self.deduplicate else ""
                yield row("trajectory", source, record.model_dump_json(exclude_defaults=True), key=key)


@dataclass(frozen=True)
class _CheckStep:
    """A trajectory completed (optional), verified (optional) and split: `train` rows (one per weighted copy),
    a `test` row, or a `dropped` / `completion_failed` row with the reasons."""

    completer: Completer | None
    parts: tuple[str, ...]
    verify: bool
    ignore: tuple[str, ...]
    test_fraction: float
    seed: int
    weight: float

    def __call__(self, item: Row) -> Iterator[Row]:
        source = item["source"]
        trajectory = Trajectory.model_validate_json(item["payload"])
        info: dict[str, Any] = {}
        if self.completer is not None:
            result = complete_one(trajectory, self.completer, parts=self.parts)
            if result.error is not None:
                failure = {"id": result.id, "reasons": [result.error], "codes": ["completion_failed"]}
                yield row("completion_failed", source, json.dumps(failure, ensure_ascii=False))
                return
            trajectory = result.trajectory
            info["filled"] = dict(
                Counter(f"{name.rsplit(' ', 1)[-1]} by {mark}" for name, mark in result.completed.items())
            )
        if self.verify:
            checked = verify_all([trajectory], ignore=self.ignore)
            if checked.dropped:
                dropped = checked.dropped[0]
                payload = {
                    "id": trajectory.id,
                    "origin": getattr(trajectory.metadata, "origin", None),
                    "reasons": [str(problem) for problem in dropped.problems],
                    "codes": dropped.codes,
                }
                info["problems"] = checked.problem_counts()
                yield row("dropped", source, json.dumps(payload, ensure_ascii=False), info=json.dumps(info))
                return
        text = json.dumps(info) if info else ""
        if split_of(trajectory.id, self.test_fraction, self.seed) == "test":
            yield row("test", source, trajectory.model_dump_json(exclude_defaults=True), info=text)
            return
        for copy in _weighted(trajectory, self.weight, self.seed):
            yield row("train", source, copy.model_dump_json(exclude_defaults=True), info=text)
            text = ""  # count a completion once, not per copy


def _stored(reference: str, datasets_dir: Path | None) -> StoredDataset:
    if datasets_dir is None:
        raise ValueError(f"data.sources: dataset {reference!r} needs the data sets' directory (MOR_HOME/datasets)")
    return resolve_dataset(reference, datasets_dir)


def split_of(trajectory_id: str, test_fraction: float, seed: int) -> str:
    """`train` or `test`, by a seeded hash of the trajectory's id (adding a source does not move the others)."""
    digest = hashlib.sha256(f"{seed}:{trajectory_id}".encode()).digest()
    return "test" if int.from_bytes(digest[:8], "big") / 2**64 < test_fraction else "train"


def dedup_key(trajectory: Trajectory) -> str:
    """What makes two trajectories duplicates: the same user messages, calls and answers (case and spacing do not
    count; system prompts, observations and thoughts do not either)."""
    parts = [
        [turn.role, " ".join((turn.content or "").lower().split()), [call.key() for call in turn.calls]]
        for turn in trajectory.turns
        if turn.role not in ("system", "observation") and (turn.content is not None or turn.calls)
    ]
    return hashlib.sha256(json.dumps(parts, ensure_ascii=False).encode()).hexdigest()


def _weighted(trajectory: Trajectory, weight: float, seed: int) -> list[Trajectory]:
    """The trajectory `floor(weight)` times, plus once more with probability `weight - floor(weight)` (seeded by
    its id). Repeats are separate trajectories with ids `<id>#<n>`."""
    whole = int(weight)
    digest = hashlib.sha256(f"weight:{seed}:{trajectory.id}".encode()).digest()
    times = whole + (int.from_bytes(digest[:8], "big") / 2**64 < weight - whole)
    return [
        trajectory if n == 0 else trajectory.model_copy(update={"id": f"{trajectory.id}#{n}"}) for n in range(times)
    ]


def _reason_counts(reasons: Sequence[Malformed | str], most: int = 10) -> dict[str, int]:
    """How often each reason occurs (the `most` commonest), its details after the first colon dropped."""
    counts: Counter[str] = Counter(
        (record.reason if isinstance(record, Malformed) else record).split(": ", 1)[0][:120] for record in reasons
    )
    return dict(sorted(counts.items(), key=lambda item: -item[1])[:most])
