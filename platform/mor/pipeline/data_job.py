"""A `kind: data` job: the data stage alone, its output stored as the next version of a named data set.

Train jobs then name it as a source (`data.sources: [{dataset: NAME@VERSION}]`); `mor data inspect NAME` shows it.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mor.cluster import ProgressReporter
from mor.data.io import write_trajectories
from mor.data.prepare import prepare_dataset
from mor.data.store import StoredDataset, publish_dataset
from mor.pipeline.prepare import decontaminate_dataset
from mor.registry import JOB_ID_TAG, TrackingSession
from mor.settings import Settings
from mor.spec import DataJobSpec

__all__ = ["DataJobSummary", "run_data_job"]


@dataclass(frozen=True)
class DataJobSummary:
    """What a data job wrote."""

    name: str
    version: int
    directory: str
    train: int
    test: int
    malformed: int

    def to_line(self) -> str:
        """The `MOR_SUMMARY {...}` line the job prints last (read by `mor job submit` and `mor job logs`)."""
        return "MOR_SUMMARY " + json.dumps({"kind": "data", **self.__dict__})


def run_data_job(
    spec: DataJobSpec, settings: Settings, *, job_id: str | None = None, progress: ProgressReporter | None = None
) -> DataJobSummary:
    """Read, verify, deduplicate, split (and decontaminate) the spec's sources; store the result as `spec.name`."""
    progress = progress or ProgressReporter()
    progress.report("data", 0, 1)
    dataset = prepare_dataset(spec.data, settings.cache_dir, settings.datasets_dir)
    extra: dict[str, Any] = {"malformed": dataset.malformed}
    prepared_dir = dataset.directory
    with tempfile.TemporaryDirectory(prefix="mor-data-job-") as scratch:
        if spec.data.decontaminate is not None:
            dataset, extra["decontamination"] = decontaminate_dataset(
                dataset, spec.data.decontaminate, settings.benchmarks_dir
            )
            prepared_dir = _with_train(prepared_dir, dataset.train, Path(scratch))
        stored = publish_dataset(
            prepared_dir, settings.datasets_dir, spec.name, data_spec=spec.data.model_dump(mode="json"), extra=extra
        )
    summary = DataJobSummary(
        name=stored.name,
        version=stored.version,
        directory=str(stored.directory),
        train=len(dataset.train),
        test=len(dataset.test),
        malformed=dataset.malformed,
    )
    progress.report(
        "data",
        1,
        1,
        {
            "train_trajectories": summary.train,
            "test_trajectories": summary.test,
            "malformed_records": summary.malformed,
            "version": stored.version,
        },
    )
    _track(stored, spec, settings, job_id)
    return summary


def _with_train(prepared_dir: Path, train: list[Any], scratch: Path) -> Path:
    """A copy of the prepared data set's directory (links to its files) with another training part."""
    for file in prepared_dir.iterdir():
        if file.is_file() and file.name != "train.jsonl":
            (scratch / file.name).symlink_to(file)
    write_trajectories(scratch / "train.jsonl", train)
    return scratch


def _track(stored: StoredDataset, spec: DataJobSpec, settings: Settings, job_id: str | None) -> None:
    """The data set's manifest and reports as an MLflow run of the job's experiment."""
    tags = {JOB_ID_TAG: job_id or "local", "mor.kind": "data", "mor.dataset": f"{stored.name}@{stored.version}"}
    with TrackingSession.start(settings, experiment=spec.name, run_name=job_id or spec.name, tags=tags) as session:
        session.log_params(
            {
                "dataset.name": stored.name,
                "dataset.version": stored.version,
                "dataset.train": stored.manifest["train"],
                "dataset.test": stored.manifest["test"],
            }
        )
        session.log_dataset_input(
            name=f"{stored.name}@{stored.version}",
            digest=stored.directory.parent.name + "-" + stored.directory.name,
            source=str(stored.directory),
            profile={key: stored.manifest.get(key) for key in ("train", "test", "by_source", "turns_by_role")},
            context="written",
        )
        for file in ("manifest.json", "report.json", "malformed.jsonl", "dropped.jsonl"):
            if (stored.directory / file).is_file():
                session.log_artifact(stored.directory / file, "data")
