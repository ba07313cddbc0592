"""The data stage of a train job: the data set (`mor.data.prepare`), the base model and tokenizer, encoded role-tagged
samples."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mor.base import load_base
from mor.data import fit_samples, render, render_text
from mor.data.prepare import DatasetFiles, prepare_dataset
from mor.data.schema import Trajectory
from mor.evals.contamination import ContaminationError, ContaminationIndex, Dropped, build_index, new_report, screen
from mor.spec import DecontaminateSpec, TrainJobSpec

__all__ = ["PreparedData", "decontaminate_dataset", "prepare_training"]


@dataclass
class PreparedData:
    """Everything training needs: the data set, the base model directory and the encoded samples."""

    dataset: DatasetFiles
    base_dir: Path
    samples_path: Path
    pad_token_id: int
    samples: int
    fit_summary: str
    decontamination: dict[str, Any] | None = None  # what `data.decontaminate` dropped, when set


def _digest(payload: object) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def prepare_training(
    spec: TrainJobSpec, cache_dir: Path, *, benchmarks_dir: Path | None = None, datasets_dir: Path | None = None
) -> PreparedData:
    """Data set, base model directory (built or resolved) and encoded training samples for a train spec.

    With `data.decontaminate`, training items whose query copies an evaluation item (from `benchmarks_dir`, and
    the held-out set) are dropped first.
    """
    dataset = prepare_dataset(spec.data, cache_dir, datasets_dir)
    decontamination = None
    if spec.data.decontaminate is not None:
        dataset, decontamination = decontaminate_dataset(dataset, spec.data.decontaminate, benchmarks_dir)
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
    key = _digest(
        {
            "data": spec.data.model_dump(mode="json"),
            "base": str(base_dir),
            "roles": roles,
            "max_seq_len": spec.train.max_seq_len,
        }
    )
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
        dataset=dataset,
        base_dir=base_dir,
        samples_path=samples_path,
        pad_token_id=int(pad),
        samples=len(encoded),
        fit_summary=report.summary(),
        decontamination=decontamination,
    )


def decontaminate_dataset(
    dataset: DatasetFiles,
    settings: DecontaminateSpec,
    benchmarks_dir: Path | None,
    *,
    keep: Callable[[Trajectory], None] | None = None,
) -> tuple[DatasetFiles, dict[str, Any]]:
    """The data set without training items that copy an evaluation item, and the report of what was dropped.

    The training part streams through the check; with `keep`, each kept trajectory goes there (e.g. to a file) and
    the returned data set is the input one; without, the kept ones are collected into the returned data set.
    """
    index = _index(dataset, settings, benchmarks_dir)
    report = new_report(index)
    kept: list[Trajectory] = []
    dropped: list[dict[str, Any]] = []
    for item in screen(dataset.iter_train(), index, report):
        if isinstance(item, Dropped):
            dropped.append({"id": item.trajectory.id, **item.match.to_dict()})
        elif keep is not None:
            keep(item)
        else:
            kept.append(item)
    summary = {**report.to_dict(), "items": dropped}
    return (dataset if keep is not None else dataset.with_train(kept)), summary


def _index(dataset: DatasetFiles, settings: DecontaminateSpec, benchmarks_dir: Path | None) -> ContaminationIndex:
    """What the training items are checked against: the chosen suites' items and the held-out set."""
    wants_benchmarks = settings.bfcl != [] or settings.stabletoolbench != []
    if wants_benchmarks and benchmarks_dir is None:
        raise ValueError(
            "data.decontaminate: checking against BFCL and StableToolBench needs their data; set MOR_BENCHMARKS_DIR "
            "to the directory holding bfcl/ and stabletoolbench/ (or give bfcl: [] and stabletoolbench: [] to "
            "check against the held-out set only)"
        )
    try:
        return build_index(
            benchmarks_dir if wants_benchmarks else None,
            bfcl=settings.bfcl,
            stabletoolbench=settings.stabletoolbench,
            held_out=dataset.test if settings.held_out else (),
            n=settings.ngram,
            threshold=settings.threshold,
        )
    except ContaminationError as error:
        raise ValueError(f"data.decontaminate: {error}") from None
