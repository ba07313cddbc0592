"""The data stage: trajectories from the spec's sources, the base model and tokenizer, encoded role-tagged samples."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from mor.base import load_base
from mor.data import (
    Tool,
    Trajectory,
    fit_samples,
    generate_synthetic,
    read_tools,
    read_trajectories,
    render,
    render_text,
    write_tools,
    write_trajectories,
)
from mor.spec import DataSpec, TrainJobSpec

__all__ = ["PreparedData", "prepare_dataset", "prepare_training", "DatasetFiles"]


@dataclass
class DatasetFiles:
    """Where a generated data set lives: tools, train and held-out test trajectories."""

    directory: Path
    tools: list[Tool]
    train: list[Trajectory]
    test: list[Trajectory]


@dataclass
class PreparedData:
    """Everything training needs: the data set, the base model directory and the encoded samples."""

    dataset: DatasetFiles
    base_dir: Path
    samples_path: Path
    pad_token_id: int
    samples: int
    fit_summary: str


def _digest(payload: object) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def prepare_dataset(data: DataSpec, cache_dir: Path) -> DatasetFiles:
    """Generate (or reuse from the cache) the trajectories a data spec names."""
    key = _digest(data.model_dump(mode="json"))
    directory = cache_dir / "datasets" / key
    if not (directory / "DONE").is_file():
        tools: list[Tool] = []
        train: list[Trajectory] = []
        test: list[Trajectory] = []
        for source in data.sources:
            params = source.synthetic
            generated = generate_synthetic(
                tools=params.tools, trajectories=params.trajectories, seed=params.seed,
                test_fraction=params.test_fraction,
            )
            tools.extend(generated.tools)
            train.extend(generated.train)
            test.extend(generated.test)
        directory.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{key}-", dir=directory.parent))
        try:
            write_tools(staging / "tools.json", tools)
            write_trajectories(staging / "train.jsonl", train)
            write_trajectories(staging / "test.jsonl", test)
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
    )


def prepare_training(spec: TrainJobSpec, cache_dir: Path) -> PreparedData:
    """Data set, base model directory (built or resolved) and encoded training samples for a train spec."""
    dataset = prepare_dataset(spec.data, cache_dir)
    roles = list(spec.mor.roles)
    texts = [render_text(trajectory) for trajectory in dataset.train]
    model, tokenizer = load_base(spec.base_model, cache_dir=cache_dir, texts=texts, roles=roles)
    base_dir = Path(getattr(model, "name_or_path", "") or "")
    if not (base_dir / "config.json").is_file():  # a hub id: keep a local copy the workers can load
        # The copy keeps the checkpoint's own dtype; base_model.dtype applies where the workers load it.
        base_dir = cache_dir / "bases" / _digest(spec.base_model.model_dump(mode="json", exclude={"dtype"}))
        if not (base_dir / "config.json").is_file():
            model.save_pretrained(base_dir)
            tokenizer.save_pretrained(base_dir)
    encoded, report = fit_samples((render(t, tokenizer, roles) for t in dataset.train), spec.train.max_seq_len)
    if not encoded:
        raise ValueError(
            f"train.max_seq_len: every training trajectory is longer than {spec.train.max_seq_len} tokens "
            f"({report.summary()}); raise it"
        )
    key = _digest({"data": spec.data.model_dump(mode="json"), "base": str(base_dir), "roles": roles,
                   "max_seq_len": spec.train.max_seq_len})
    samples_path = cache_dir / "samples" / f"{key}.jsonl"
    if not samples_path.is_file():
        samples_path.parent.mkdir(parents=True, exist_ok=True)
        partial = samples_path.with_suffix(".partial")
        with partial.open("w") as handle:
            for sample in encoded:
                handle.write(json.dumps(sample.to_dict()) + "\n")
        os.replace(partial, samples_path)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    return PreparedData(
        dataset=dataset, base_dir=base_dir, samples_path=samples_path, pad_token_id=int(pad),
        samples=len(encoded), fit_summary=report.summary(),
    )
