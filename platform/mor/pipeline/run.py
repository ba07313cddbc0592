"""The job entry point run inside a Ray job: `python -m mor.pipeline.run --spec SPEC [--job-id ID]`.

Stages: data → train (Ray Train) → register (MLflow) → eval (SQL + MLflow). Every stage reports progress lines for
the CLI. A failing job leaves nothing half-written: the MLflow run ends FAILED, a registration is rolled back, and
evaluation rows are marked failed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from transformers import AutoTokenizer

from mor.cluster import ProgressReporter
from mor.data.engine import Engine, ray_engine
from mor.pipeline.data_inputs import log_data_input
from mor.pipeline.data_job import run_data_job
from mor.pipeline.evaluate import EvalOutcome, evaluate_registered_agent
from mor.pipeline.prepare import PreparedData, prepare_training
from mor.pipeline.sinks import MlflowMetricsSink
from mor.registry import JOB_ID_TAG, BaseModelRef, RegisteredAgent, TrackingSession, register_agent
from mor.registry.agent import unregister_agent
from mor.settings import Settings
from mor.spec import DataJobSpec, TrainJobSpec, parse_spec
from mor.train import TrainInputs, build_trainer, read_checkpoint

__all__ = ["JobSummary", "run_train_job", "main", "SUMMARY_MARKER"]

SUMMARY_MARKER = "MOR_SUMMARY"


@dataclass
class JobSummary:
    """What a finished train job produced, printed as the job's last log line for the CLI."""

    job_name: str
    mlflow_run_id: str
    tracking_uri: str
    steps: int
    train_seconds: float
    final_loss: float
    model_uri: str | None = None
    alias_uri: str | None = None
    evals: list[dict[str, object]] = field(default_factory=list)
    samples: int = 0

    def to_line(self) -> str:
        """The log line that carries the summary."""
        return f"{SUMMARY_MARKER} {json.dumps(asdict(self), sort_keys=True)}"


def _base_ref(spec: TrainJobSpec) -> BaseModelRef:
    base = spec.base_model.model_dump(mode="json")
    if "builtin" in base:
        return BaseModelRef("builtin", base["builtin"])
    if "path" in base:
        return BaseModelRef("path", str(base["path"]))
    return BaseModelRef("hub", base["hub"], base.get("revision"))


def _train(
    spec: TrainJobSpec, prepared: PreparedData, settings: Settings, session: TrackingSession, progress: ProgressReporter
) -> tuple[Path, float, int, float]:
    trainer = build_trainer(
        spec,
        TrainInputs(prepared.base_dir, prepared.samples_path, prepared.pad_token_id),
        storage_path=settings.storage_dir,
        run_name=f"{spec.name}-{session.run_id[:12]}",
        metrics_sink=MlflowMetricsSink(settings, session.run_id),
        progress_sink=progress,
    )
    started = time.perf_counter()
    result = trainer.fit()  # [Ray] runs the workers; restarts them from the latest checkpoint on failure
    seconds = time.perf_counter() - started
    if result.checkpoint is None:
        raise RuntimeError("training finished without a checkpoint; see the job logs for the workers' errors")
    local = Path(tempfile.mkdtemp(prefix="mor-final-"))
    checkpoint_dir = Path(result.checkpoint.to_directory(str(local / "checkpoint")))
    adapter_dir, _, state = read_checkpoint(checkpoint_dir)
    final_loss = float((result.metrics or {}).get("loss", float("nan")))
    return adapter_dir, final_loss, state.step, seconds


def _split_roles(adapter_dir: Path, prepared: PreparedData, target: Path) -> dict[str, Path]:
    """The adapter directories to register: one per role for MoR (each role versioned and swapped on its own), or
    one serving every role (MoR without role split, the plain LoRA)."""
    from mor.model import split_for_registry

    return split_for_registry(adapter_dir, prepared.base_dir, target)


def run_train_job(
    spec: TrainJobSpec,
    spec_text: str,
    settings: Settings,
    *,
    job_id: str | None = None,
    progress: ProgressReporter | None = None,
    engine: Engine | None = None,
) -> JobSummary:
    """Run every stage of a train job on the connected Ray cluster (the data stage's per-record work on `engine`,
    default: this process)."""
    progress = progress or ProgressReporter()
    progress.report("data", 0, 1)
    prepared = prepare_training(
        spec,
        settings.cache_dir,
        benchmarks_dir=settings.benchmarks_dir,
        datasets_dir=settings.datasets_dir,
        engine=engine,
    )
    progress.report(
        "data",
        1,
        1,
        {
            "train_trajectories": len(prepared.dataset.train),
            "test_trajectories": len(prepared.dataset.test),
            "malformed_records": prepared.dataset.malformed,
            "decontaminated": (prepared.decontamination or {}).get("dropped", 0),
            "samples": prepared.samples,
        },
    )
    tags = {JOB_ID_TAG: job_id or "local", "mor.kind": spec.kind}
    registered: RegisteredAgent | None = None
    with TrackingSession.start(settings, experiment=spec.name, run_name=job_id or spec.name, tags=tags) as session:
        try:
            session.log_spec(spec.model_dump(mode="json", by_alias=True), spec_text=spec_text)
            session.log_params(
                {
                    "data.samples": prepared.samples,
                    "data.fit": prepared.fit_summary,
                    "data.dataset_dir": str(prepared.dataset.directory),
                    "data.malformed_records": prepared.dataset.malformed,
                }
            )
            stored = prepared.reused_from
            log_data_input(
                session,
                name=stored or f"{spec.name}-data",
                digest=prepared.dataset.directory.name,
                source=prepared.dataset.directory,
                profile={
                    "train": len(prepared.dataset.train),
                    "test": len(prepared.dataset.test),
                    "samples": prepared.samples,
                    "tokens": prepared.token_stats,
                    **({"samples_from": stored} if stored else {}),
                    **prepared.dataset.report,
                },
                context="training",
                samples=prepared.samples_path,
                tokenizer=AutoTokenizer.from_pretrained(str(prepared.base_dir)),
                roles=list(spec.mor.roles),
            )
            for report in ("report.json", "dropped.jsonl", "malformed.jsonl"):
                if (prepared.dataset.directory / report).is_file():
                    session.log_artifact(prepared.dataset.directory / report, "data")
            if prepared.decontamination is not None:
                session.log_text(json.dumps(prepared.decontamination, indent=2), "data/decontamination.json")
            adapter_dir, final_loss, steps, seconds = _train(spec, prepared, settings, session, progress)
            summary = JobSummary(
                job_name=spec.name,
                mlflow_run_id=session.run_id,
                tracking_uri=settings.tracking_uri,
                steps=steps,
                train_seconds=round(seconds, 1),
                final_loss=final_loss,
                samples=prepared.samples,
            )
            if spec.register_ is not None:
                progress.report("register", 0, 1)
                with tempfile.TemporaryDirectory(prefix="mor-roles-") as scratch:
                    adapters = _split_roles(adapter_dir, prepared, Path(scratch))
                    base = _base_ref(spec)
                    registered = register_agent(
                        session,
                        model_name=spec.register_.model_name,
                        base=base,
                        adapters=adapters,
                        tokenizer=prepared.base_dir,
                        spec_text=spec_text,
                        base_weights=prepared.base_dir if base.kind == "builtin" else None,
                        alias=spec.register_.alias,
                        description=spec.description,
                        tags={JOB_ID_TAG: job_id or "local"},
                        roles=list(spec.mor.roles),
                    )
                summary.model_uri, summary.alias_uri = registered.uri, registered.alias_uri
                progress.report("register", 1, 1)
            if spec.eval is not None:
                if registered is None:
                    raise ValueError("eval: needs register (the evaluated agent is the registered version)")
                outcomes: list[EvalOutcome] = evaluate_registered_agent(
                    spec,
                    registered,
                    prepared,
                    settings,
                    session=session,
                    progress=progress,
                    job_id=job_id,
                )
                summary.evals = [outcome.as_dict() for outcome in outcomes]
            session.flush()
        except BaseException:
            if registered is not None:
                unregister_agent(session, registered)
            raise
    return summary


def main(argv: list[str] | None = None) -> int:
    """Command-line entry of the Ray job."""
    parser = argparse.ArgumentParser(prog="python -m mor.pipeline.run", description=__doc__)
    parser.add_argument(
        "--spec",
        type=Path,
        default=None,
        help="YAML job spec (default: the MOR_JOB_SPEC environment variable set by `mor job submit`)",
    )
    parser.add_argument("--job-id", default=None, help="Ray job submission id")
    args = parser.parse_args(argv)
    if args.spec is not None:
        spec_text, source = args.spec.read_text(), str(args.spec)
    elif os.environ.get("MOR_JOB_SPEC"):
        spec_text, source = os.environ["MOR_JOB_SPEC"], os.environ.get("MOR_JOB_SPEC_SOURCE", "<submitted spec>")
    else:
        parser.error("give --spec or set MOR_JOB_SPEC")
    spec = parse_spec(spec_text, source=source, spec_dir=Path(source).parent if Path(source).is_absolute() else None)
    import ray

    ray.init(address="auto", log_to_driver=True)  # [Ray] join the cluster the job runs on
    engine = ray_engine()  # the data stage's per-record work runs on Ray Data across the cluster
    if isinstance(spec, DataJobSpec):
        print(run_data_job(spec, Settings(), job_id=args.job_id, engine=engine).to_line(), flush=True)
        return 0
    summary = run_train_job(spec, spec_text, Settings(), job_id=args.job_id, engine=engine)
    print(summary.to_line(), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
