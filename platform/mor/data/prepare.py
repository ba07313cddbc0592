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
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

from mor.data.complete import LLMCompleterConfig, RuleCompleterConfig, build_completer, complete
from mor.data.io import read_tools, read_trajectories, write_tools, write_trajectories
from mor.data.readers import Malformed
from mor.data.schema import Tool, Trajectory
from mor.data.sources import SourceData, read_source
from mor.data.store import StoredDataset, read_dataset, resolve_dataset
from mor.data.verify import Dropped, verify_all

__all__ = ["DataSpecLike", "DatasetFiles", "prepare_dataset"]


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
    """Where a prepared data set lives: tools, train and held-out test trajectories."""

    directory: Path
    tools: list[Tool]
    train: list[Trajectory]
    test: list[Trajectory]
    report: dict[str, Any] = field(default_factory=dict)  # per source: trajectories, train, test, malformed

    @property
    def malformed(self) -> int:
        """Records the sources could not use (their reasons are in `directory / "malformed.jsonl"`)."""
        return sum(int(entry.get("malformed", 0)) for entry in self.report.get("sources", []))


def _digest(payload: object) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def prepare_dataset(data: DataSpecLike, cache_dir: Path, datasets_dir: Path | None = None) -> DatasetFiles:
    """Read (or reuse from the cache) the trajectories of every source a data spec names; `datasets_dir` holds the
    data sets `{dataset: NAME@VERSION}` sources name (`mor.data.store`)."""
    stored = {
        ref: _stored(ref, datasets_dir)
        for ref in (dict(source.model_dump(mode="python")).get("dataset") for source in data.sources)
        if ref is not None
    }
    key = _digest([data.model_dump(mode="json"), {ref: str(found.directory) for ref, found in stored.items()}])
    directory = cache_dir / "datasets" / key
    if not (directory / "DONE").is_file():
        tools: list[Tool] = []
        train: list[Trajectory] = []
        test: list[Trajectory] = []
        malformed: list[Malformed] = []
        rejected: list[Dropped] = []
        rejected_completion: list[dict[str, Any]] = []
        report: dict[str, Any] = {"sources": []}
        seen: set[str] = set()
        for source in data.sources:
            for name, options in source.model_dump(mode="python").items():  # one field: the format's name
                weight = float(options.pop("weight", 1.0)) if isinstance(options, dict) else 1.0
                if name == "dataset":  # already verified and split by the data job that wrote it
                    read = SourceData(*read_dataset(stored[options]))
                    options = {"path": str(stored[options].directory)}
                else:
                    read = read_source(name, dict(options))
                source_train, source_test = read.train, read.test
                incomplete = duplicates = 0
                verification: dict[str, Any] = {}
                completion: dict[str, Any] = {}
                if name not in ("synthetic", "dataset"):
                    usable = [t for t in read.train if any(not turn.is_context for turn in t.turns)]
                    incomplete = len(read.train) - len(usable)
                    if data.deduplicate:
                        before = len(usable)
                        usable = _first_of_each(usable, seen)
                        duplicates = before - len(usable)
                    if data.complete is not None:
                        usable, completion = _complete(usable, data.complete, cache_dir)
                        rejected_completion.extend(completion.pop("failures"))
                    if data.verify:
                        checked = verify_all(usable, ignore=data.verify_ignore)
                        usable = checked.kept
                        rejected.extend(checked.dropped)
                        verification = {"dropped": len(checked.dropped), "problems": checked.problem_counts()}
                    source_train, source_test = _split(usable, data.test_fraction, data.seed)
                    source_train = _weighted(source_train, weight, data.seed)
                tools.extend(read.tools)
                train.extend(source_train)
                test.extend(source_test)
                malformed.extend(read.malformed)
                report["sources"].append(
                    {
                        "format": name,
                        "path": options.get("path"),
                        "train": len(source_train),
                        "test": len(source_test),
                        "malformed": len(read.malformed),
                        "without_agent_turns": incomplete,
                        "duplicates": duplicates,
                        "weight": weight,
                        "failed_verification": verification,
                        "completion": completion,
                        "malformed_reasons": _reason_counts(read.malformed),
                    }
                )
        directory.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{key}-", dir=directory.parent))
        try:
            write_tools(staging / "tools.json", tools)
            write_trajectories(staging / "train.jsonl", train)
            write_trajectories(staging / "test.jsonl", test)
            with (staging / "malformed.jsonl").open("w", encoding="utf-8") as handle:
                for record in malformed:
                    handle.write(json.dumps(asdict(record), ensure_ascii=False) + "\n")
            with (staging / "dropped.jsonl").open("w", encoding="utf-8") as handle:
                for item in rejected:
                    row = {
                        "id": item.trajectory.id,
                        "origin": getattr(item.trajectory.metadata, "origin", None),
                        "reasons": [str(problem) for problem in item.problems],
                        "codes": item.codes,
                    }
                    handle.write(json.dumps(row, ensure_ascii=False) + "\n")
                for row in rejected_completion:
                    handle.write(json.dumps(row, ensure_ascii=False) + "\n")
            (staging / "report.json").write_text(json.dumps(report, indent=2, ensure_ascii=False))
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
        report=json.loads((directory / "report.json").read_text()) if (directory / "report.json").is_file() else {},
    )


def _complete(
    trajectories: list[Trajectory], settings: Any, cache_dir: Path
) -> tuple[list[Trajectory], dict[str, Any]]:
    """The trajectories with their missing parts filled (`data.complete`), and counts; failures are set apart."""
    if settings.endpoint:
        config: RuleCompleterConfig | LLMCompleterConfig = LLMCompleterConfig(
            base_url=settings.endpoint,
            model=settings.model,
            api_key_env=settings.api_key_env,
            cache_dir=str(cache_dir / "completions"),
            requests_per_second=settings.requests_per_second,
            max_attempts=settings.max_attempts,
        )
    else:
        config = RuleCompleterConfig()
    completed: list[Trajectory] = []
    filled: dict[str, int] = {}
    failures: list[dict[str, Any]] = []
    for result in complete(trajectories, build_completer(config), parts=settings.parts):
        if result.error is not None:
            failures.append({"id": result.id, "reasons": [result.error], "codes": ["completion_failed"]})
            continue
        completed.append(result.trajectory)
        for field_name, mark in result.completed.items():
            key = f"{field_name.rsplit(' ', 1)[-1]} by {mark}"
            filled[key] = filled.get(key, 0) + 1
    return completed, {"filled": filled, "failed": len(failures), "failures": failures}


def _stored(reference: str, datasets_dir: Path | None) -> StoredDataset:
    if datasets_dir is None:
        raise ValueError(f"data.sources: dataset {reference!r} needs the data sets' directory (MOR_HOME/datasets)")
    return resolve_dataset(reference, datasets_dir)


def _split(
    trajectories: list[Trajectory], test_fraction: float, seed: int
) -> tuple[list[Trajectory], list[Trajectory]]:
    """Train and held-out test by a seeded hash of each trajectory's id."""
    train, test = [], []
    for trajectory in trajectories:
        digest = hashlib.sha256(f"{seed}:{trajectory.id}".encode()).digest()
        (test if int.from_bytes(digest[:8], "big") / 2**64 < test_fraction else train).append(trajectory)
    return train, test


def _first_of_each(trajectories: list[Trajectory], seen: set[str]) -> list[Trajectory]:
    """The trajectories whose user messages, calls and answers no earlier one had (`seen` holds the keys so far,
    across sources; case and spacing do not count)."""
    kept = []
    for trajectory in trajectories:
        parts = [
            [turn.role, " ".join((turn.content or "").lower().split()), [call.key() for call in turn.calls]]
            for turn in trajectory.turns
            if turn.role not in ("system", "observation") and (turn.content is not None or turn.calls)
        ]
        key = hashlib.sha256(json.dumps(parts, ensure_ascii=False).encode()).hexdigest()
        if key not in seen:
            seen.add(key)
            kept.append(trajectory)
    return kept


def _weighted(trajectories: list[Trajectory], weight: float, seed: int) -> list[Trajectory]:
    """Each trajectory `floor(weight)` times, plus once more with probability `weight - floor(weight)` (seeded by
    its id). Repeats are separate trajectories with ids `<id>#<n>`."""
    out = []
    whole = int(weight)
    for trajectory in trajectories:
        digest = hashlib.sha256(f"weight:{seed}:{trajectory.id}".encode()).digest()
        times = whole + (int.from_bytes(digest[:8], "big") / 2**64 < weight - whole)
        out.extend(
            trajectory if n == 0 else trajectory.model_copy(update={"id": f"{trajectory.id}#{n}"}) for n in range(times)
        )
    return out


def _reason_counts(malformed: Sequence[Malformed], most: int = 10) -> dict[str, int]:
    """How often each reason occurs (the `most` commonest), its details after the first colon dropped."""
    counts: dict[str, int] = {}
    for record in malformed:
        key = record.reason.split(": ", 1)[0][:120]
        counts[key] = counts.get(key, 0) + 1
    return dict(sorted(counts.items(), key=lambda item: -item[1])[:most])
