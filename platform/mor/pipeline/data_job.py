"""A `kind: data` job: the data stage alone, its output stored as the next version of a named data set.

Train jobs then name it as a source (`data.sources: [{dataset: NAME@VERSION}]`); `mor data inspect NAME` shows it.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from transformers import AutoTokenizer

from mor.base import load_tokenizer
from mor.cluster import ProgressReporter
from mor.data.engine import Engine, LocalEngine, default_engine
from mor.data.io import iter_trajectories
from mor.data.prepare import prepare_dataset
from mor.data.render import render_text
from mor.data.samples import SAMPLE_COLUMNS, render_identity, spool_trajectories, write_samples
from mor.data.store import StoredDataset, publish_dataset
from mor.pipeline.data_inputs import log_data_input
from mor.pipeline.prepare import decontaminate_dataset
from mor.registry import JOB_ID_TAG, TrackingSession
from mor.settings import Settings
from mor.spec import DataJobSpec, RenderSpec

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
    samples: int = 0  # rendered role samples (0 without `render`)
    tokens: int = 0

    def to_line(self) -> str:
        """The `MOR_SUMMARY {...}` line the job prints last (read by `mor job submit` and `mor job logs`)."""
        return "MOR_SUMMARY " + json.dumps({"kind": "data", **self.__dict__})


def run_data_job(
    spec: DataJobSpec,
    settings: Settings,
    *,
    job_id: str | None = None,
    progress: ProgressReporter | None = None,
    engine: Engine | None = None,
) -> DataJobSummary:
    """Read, verify, deduplicate, split (and decontaminate) the spec's sources, render the training part as role
    samples (`render`), and store the result as the next version of `spec.name`. Every pass streams, on `engine`
    (default: Ray Data when connected to Ray)."""
    progress = progress or ProgressReporter()
    engine = engine or default_engine()
    progress.report("data", 0, 3)
    dataset = prepare_dataset(
        spec.data,
        settings.cache_dir,
        settings.datasets_dir,
        engine=engine,
        # metrics are numbers: the pass ("read sharegpt", "check sharegpt") names the count
        progress=lambda stage, done: progress.report("data", 0, 3, {f"{stage.split()[0]}_records": done}),
    )
    extra: dict[str, Any] = {"malformed": dataset.malformed, "engine": engine.name}
    settings.cache_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="mor-data-job-", dir=settings.cache_dir) as scratch:
        staged = Path(scratch) / "dataset"
        staged.mkdir()
        for file in dataset.directory.iterdir():
            if file.is_file() and not (spec.data.decontaminate is not None and file.name == "train.jsonl"):
                (staged / file.name).symlink_to(file)
        progress.report("data", 1, 3)
        if spec.data.decontaminate is not None:
            with (staged / "train.jsonl").open("w", encoding="utf-8") as handle:
                _, extra["decontamination"] = decontaminate_dataset(
                    dataset,
                    spec.data.decontaminate,
                    settings.benchmarks_dir,
                    keep=lambda t: handle.write(t.model_dump_json(exclude_defaults=True) + "\n"),
                )
        progress.report("data", 2, 3)
        if spec.render is not None:
            extra["samples"] = _render(spec.render, staged, Path(scratch), settings, engine)
        stored = publish_dataset(
            staged, settings.datasets_dir, spec.name, data_spec=spec.data.model_dump(mode="json"), extra=extra
        )
    samples = stored.manifest.get("samples", {}).get("stats", {})
    summary = DataJobSummary(
        name=stored.name,
        version=stored.version,
        directory=str(stored.directory),
        train=int(stored.manifest["train"]),
        test=int(stored.manifest["test"]),
        malformed=dataset.malformed,
        samples=int(samples.get("sequences", 0)),
        tokens=int(samples.get("tokens", 0)),
    )
    progress.report(
        "data",
        3,
        3,
        {
            "train_trajectories": summary.train,
            "test_trajectories": summary.test,
            "malformed_records": summary.malformed,
            "samples": summary.samples,
            "version": stored.version,
        },
    )
    _track(stored, spec, settings, job_id)
    return summary


def _render(render: RenderSpec, staged: Path, scratch: Path, settings: Settings, engine: Engine) -> dict[str, Any]:
    """The training part as role samples (`samples.parquet`) and the tokenizer they were rendered with
    (`tokenizer/`); returns the manifest's `samples` entry."""
    train_file = staged / "train.jsonl"
    tokenizer = load_tokenizer(
        render.base_model.model_dump(mode="python"),
        cache_dir=settings.cache_dir,
        texts=_Texts(train_file),
        roles=render.roles,
    )
    trajectories = iter_trajectories(train_file)
    source = trajectories if isinstance(engine, LocalEngine) else spool_trajectories(trajectories, scratch / "spool")
    stats = write_samples(
        source,
        staged / "samples.parquet",
        tokenizer=tokenizer,
        roles=render.roles,
        max_seq_len=render.max_seq_len,
        engine=engine,
    )
    tokenizer.save_pretrained(staged / "tokenizer")
    return {
        "file": "samples.parquet",
        "columns": list(SAMPLE_COLUMNS),
        "base_model": render.base_model.model_dump(mode="json"),
        "roles": list(render.roles),
        "max_seq_len": render.max_seq_len,
        "render_identity": render_identity(tokenizer, render.roles, render.max_seq_len),
        "stats": stats.to_dict(),
    }


class _Texts:
    """The rendered text of every trajectory of a file, read again on each iteration."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __iter__(self) -> Iterator[str]:
        return (render_text(trajectory) for trajectory in iter_trajectories(self.path))


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
        samples = stored.manifest.get("samples")
        log_data_input(
            session,
            name=f"{stored.name}@{stored.version}",
            digest=stored.directory.parent.name + "-" + stored.directory.name,
            source=stored.directory,
            profile={
                **{key: stored.manifest.get(key) for key in ("train", "test", "by_source", "turns_by_role")},
                "tokens": (samples or {}).get("stats"),
            },
            context="written",
            samples=stored.directory / "samples.parquet" if samples else None,
            tokenizer=AutoTokenizer.from_pretrained(str(stored.directory / "tokenizer")) if samples else None,
            roles=(samples or {}).get("roles", ()),
            manifest=stored.directory / "manifest.json",
        )
        for file in ("report.json", "malformed.jsonl", "dropped.jsonl"):
            if (stored.directory / file).is_file():
                session.log_artifact(stored.directory / file, "data")
