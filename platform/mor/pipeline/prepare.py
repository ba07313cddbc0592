"""The data stage of a train job: the data set (`mor.data.prepare`), the base model and tokenizer, encoded role-tagged
samples."""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mor.base import load_base
from mor.data import render_text
from mor.data.engine import Engine, LocalEngine, default_engine
from mor.data.prepare import DatasetFiles, prepare_dataset
from mor.data.samples import render_identity, spool_trajectories, write_samples
from mor.data.schema import Trajectory
from mor.data.store import resolve_dataset
from mor.evals.contamination import ContaminationError, ContaminationIndex, Dropped, build_index, new_report, screen
from mor.spec import DecontaminateSpec, TrainJobSpec

__all__ = ["PreparedData", "decontaminate_dataset", "prepare_training"]


@dataclass
class PreparedData:
    """Everything training needs: the data set, the base model directory and the encoded samples."""

    dataset: DatasetFiles
    base_dir: Path
    samples_path: Path  # Parquet (`mor.data.samples`)
    pad_token_id: int
    samples: int
    fit_summary: str
    decontamination: dict[str, Any] | None = None  # what `data.decontaminate` dropped, when set
    token_stats: dict[str, Any] = field(default_factory=dict)  # `TokenStats.to_dict()` of the samples
    reused_from: str | None = None  # the stored data set whose rendered samples are used as they are


def _digest(payload: object) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


class RenderedTexts:
    """The rendered text of every training trajectory, read from the data set each time it is iterated (what a
    built-in base's tokenizer is trained on, without holding the corpus)."""

    def __init__(self, dataset: DatasetFiles) -> None:
        self.dataset = dataset

    def __iter__(self) -> Iterator[str]:
        return (render_text(trajectory) for trajectory in self.dataset.iter_train())


def prepare_training(
    spec: TrainJobSpec,
    cache_dir: Path,
    *,
    benchmarks_dir: Path | None = None,
    datasets_dir: Path | None = None,
    engine: Engine | None = None,
) -> PreparedData:
    """Data set, base model directory (built or resolved) and encoded training samples for a train spec.

    With `data.decontaminate`, training items whose query copies an evaluation item (from `benchmarks_dir`, and
    the held-out set) are dropped first. When the data is one stored data set whose samples were rendered with the
    same tokenizer, roles and `max_seq_len` (`render_identity`), its samples file is used as it is. `engine` runs
    the per-record work (`mor.data.engine`; default: this process).
    """
    engine = engine or default_engine()
    dataset = prepare_dataset(spec.data, cache_dir, datasets_dir, engine=engine)
    decontamination = None
    if spec.data.decontaminate is not None:
        dataset, decontamination = decontaminate_dataset(dataset, spec.data.decontaminate, benchmarks_dir)
    roles = list(spec.mor.roles)
    model, tokenizer = load_base(spec.base_model, cache_dir=cache_dir, texts=RenderedTexts(dataset), roles=roles)
    base_dir = Path(getattr(model, "name_or_path", "") or "")
    if not (base_dir / "config.json").is_file():  # a hub id: keep a local copy the workers can load
        # The copy keeps the checkpoint's own dtype; base_model.dtype applies where the workers load it.
        base_dir = cache_dir / "bases" / _digest(spec.base_model.model_dump(mode="json", exclude={"dtype"}))
        if not (base_dir / "config.json").is_file():
            model.save_pretrained(base_dir)
            tokenizer.save_pretrained(base_dir)
    identity = render_identity(tokenizer, roles, spec.train.max_seq_len)
    reused = _stored_samples(spec, datasets_dir, identity)
    if reused is not None:
        samples_path, manifest = reused
        stats = dict(manifest["samples"]["stats"])
        reused_from = f"{manifest['name']}@{manifest['version']}"
    else:
        key = _digest({"data": spec.data.model_dump(mode="json"), "base": str(base_dir), "render": identity})
        samples_path = cache_dir / "samples" / f"{key}.parquet"
        stats_path = samples_path.with_suffix(".stats.json")
        if not (samples_path.is_file() and stats_path.is_file()):
            spool_dir = cache_dir / "samples" / f".{key}-spool"
            try:
                trajectories = dataset.iter_train()
                written = write_samples(
                    trajectories if isinstance(engine, LocalEngine) else spool_trajectories(trajectories, spool_dir),
                    samples_path,
                    tokenizer=tokenizer,
                    roles=roles,
                    max_seq_len=spec.train.max_seq_len,
                    engine=engine,
                )
            finally:
                shutil.rmtree(spool_dir, ignore_errors=True)
            stats_path.write_text(json.dumps(written.to_dict(), indent=2))
        stats = json.loads(stats_path.read_text())
        reused_from = None
    fit = stats["fit"]
    fit_summary = (
        f"kept {fit['kept']}, cut at a turn boundary {fit['cut']}, dropped {fit['dropped']} (longest {fit['longest']})"
    )
    if not stats["sequences"]:
        raise ValueError(
            f"train.max_seq_len: every training trajectory is longer than {spec.train.max_seq_len} tokens "
            f"({fit_summary}); raise it"
        )
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    return PreparedData(
        dataset=dataset,
        base_dir=base_dir,
        samples_path=samples_path,
        pad_token_id=int(pad),
        samples=int(stats["sequences"]),
        fit_summary=fit_summary,
        decontamination=decontamination,
        token_stats=stats,
        reused_from=reused_from,
    )


def _stored_samples(spec: TrainJobSpec, datasets_dir: Path | None, identity: str) -> tuple[Path, dict[str, Any]] | None:
    """The samples file of the one stored data set the spec trains on, when it was rendered as this job would."""
    sources = [source.model_dump(mode="python") for source in spec.data.sources]
    if datasets_dir is None or spec.data.decontaminate is not None or len(sources) != 1:
        return None
    reference = sources[0].get("dataset")
    if reference is None or float(sources[0].get("weight", 1.0)) != 1.0:
        return None
    stored = resolve_dataset(reference, datasets_dir)
    samples = stored.manifest.get("samples") or {}
    path = stored.directory / str(samples.get("file", ""))
    if samples.get("render_identity") != identity or not path.is_file():
        return None
    return path, stored.manifest


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
