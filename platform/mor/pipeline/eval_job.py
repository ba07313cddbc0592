"""The Ray job of one evaluation run: `python -m mor.pipeline.eval_job --run-id N [--job-id ID]`.

Everything the run needs is on its `eval_runs` row, created queued by `mor eval run` or by the scheduler:
suite, categories, model URI (an alias is resolved now, so a nightly run follows the champion) and run options.
The job marks the row running with what the model resolved to and its Ray job id, runs the suite, stores one
row per item, logs the summary to an MLflow run (experiment `mor-evals`, tagged with suite and model), and
finishes the row succeeded — or failed with the error, so the scheduler can retry it.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, dataclass, field

from mor.cluster import ProgressReporter
from mor.evals.record import record_failure, record_result
from mor.evals.runner import SuiteResult, build_target, check_options, parse_suite, run_suite
from mor.registry import JOB_ID_TAG, TrackingSession
from mor.settings import Settings
from mor.store import EvalRun, get_or_create_model, get_run, make_engine, session_scope, start_run

__all__ = ["EVAL_SUMMARY_MARKER", "EXPERIMENT", "EvalJobSummary", "main", "run_eval_job"]

EXPERIMENT = "mor-evals"
EVAL_SUMMARY_MARKER = "MOR_EVAL_SUMMARY"


@dataclass
class EvalJobSummary:
    """What an eval job did, printed as its last log line."""

    run_id: int
    suite: str
    categories: list[str]
    model_uri: str
    status: str
    items: int = 0
    metrics: dict[str, float] = field(default_factory=dict)
    mlflow_run_id: str | None = None

    def to_line(self) -> str:
        """The log line that carries the summary."""
        return f"{EVAL_SUMMARY_MARKER} {json.dumps(asdict(self), sort_keys=True)}"


def _tags(run: EvalRun, label: str, model_name: str, model_version: str | None, job_id: str | None) -> dict[str, str]:
    tags = {
        "mor.suite": run.suite,
        "mor.eval": label,
        "mor.categories": ",".join(run.categories),
        "mor.model": run.model_uri,
        "mor.model_name": model_name,
        "mor.eval_run_id": str(run.id),
        "mor.triggered_by": run.triggered_by,
        JOB_ID_TAG: job_id or "local",
    }
    if model_version is not None:
        tags["mor.model_version"] = model_version
    return tags


def run_eval_job(
    run_id: int,
    settings: Settings,
    *,
    job_id: str | None = None,
    progress: ProgressReporter | None = None,
) -> EvalJobSummary:
    """Run the queued evaluation run `run_id` and record everything; raises after recording a failure."""
    progress = progress or ProgressReporter()
    engine = make_engine(settings.db_url)
    mlflow_run_id: str | None = None
    try:
        with session_scope(engine) as session:
            run = get_run(session=session, run_id=run_id)
        if run.status != "queued":
            # Never touch a run another job owns or that already ended: report and stop.
            raise RuntimeError(
                f"run {run_id}: status is {run.status!r}, an eval job only starts a queued run; "
                "start a new one with `mor eval run`"
            )
        try:
            selection = parse_suite(run.suite, run.categories)
            options = check_options(run.config or {})
            target, info = build_target(run.model_uri, settings, options)
            with session_scope(engine) as session:
                model = get_or_create_model(
                    session=session, uri=info.uri, name=info.name, version=info.version, base_model=info.base_model
                )
                start_run(session=session, run_id=run_id, model=model, ray_job_id=job_id)
            tags = _tags(run, selection.label, info.name, info.version, job_id)
            with TrackingSession.start(
                settings, experiment=EXPERIMENT, run_name=f"{selection.label}#{run_id}", tags=tags
            ) as tracking:
                mlflow_run_id = tracking.run_id
                tracking.log_params(
                    {
                        "suite": selection.label,
                        "categories": list(selection.categories),
                        "model_uri": run.model_uri,
                        **options,
                    }
                )
                result: SuiteResult = run_suite(
                    selection,
                    target,
                    settings,
                    options,
                    progress=lambda stage, done, total: progress.report(stage, done, total),
                )
                if result.judge_kind:
                    tracking.set_tags({"mor.judge_kind": result.judge_kind})
                record_result(
                    engine,
                    run_id,
                    rows=result.rows,
                    metrics=result.metrics,
                    judge_kind=result.judge_kind,
                    tracking=tracking,
                )
        except BaseException as error:
            record_failure(engine, run_id, error, mlflow_run_id=mlflow_run_id)
            raise
        progress.report("eval", len(result.rows), len(result.rows), {"accuracy": result.metrics.get("accuracy", 0.0)})
        return EvalJobSummary(
            run_id=run_id,
            suite=run.suite,
            categories=list(selection.categories),
            model_uri=run.model_uri,
            status="succeeded",
            items=len(result.rows),
            metrics=result.metrics,
            mlflow_run_id=mlflow_run_id,
        )
    finally:
        engine.dispose()


def main(argv: list[str] | None = None) -> int:
    """Command-line entry of the Ray job."""
    parser = argparse.ArgumentParser(prog="python -m mor.pipeline.eval_job", description=__doc__.splitlines()[0])
    parser.add_argument("--run-id", type=int, required=True, help="the queued eval_runs row to run")
    parser.add_argument("--job-id", default=None, help="Ray job submission id (recorded on the run)")
    args = parser.parse_args(argv)
    settings = Settings()
    try:
        summary = run_eval_job(args.run_id, settings, job_id=args.job_id)
    except Exception as error:  # recorded on the run already; the job must end FAILED
        print(f"eval run {args.run_id} failed: {type(error).__name__}: {error}", file=sys.stderr, flush=True)
        return 1
    print(summary.to_line(), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
