"""The eval stage: load the registered agent back from MLflow, run each suite, store every item in SQL.

Unless the spec says `eval.baseline: none`, each suite is also scored with every adapter switched off (the base model
in the same role-gated loop: what training started from). A trained agent that scores at or below that is flagged in
the job summary. The baseline depends only on the base, the held-out items and the loop settings, so a stored run
with the same configuration hash is reused instead of evaluated again.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from mor.agent import Agent, AgentConfig, build_agent, load_agent_model
from mor.cluster import ProgressReporter
from mor.evals.record import canonical_metrics, mlflow_prefix, record_failure, record_result, synthetic_rows
from mor.evals.synthetic import SyntheticEvalResult, evaluate_synthetic
from mor.hashing import file_sha256
from mor.model import MoRModel
from mor.pipeline.prepare import PreparedData
from mor.registry import RegisteredAgent, TrackingSession, resolve_model
from mor.registry.layout import BASE_DIR, TOKENIZER_DIR, LocalAgentDir
from mor.settings import Settings
from mor.spec import TrainJobSpec
from mor.store import (
    create_run,
    get_or_create_model,
    hash_config,
    make_engine,
    reusable_run,
    session_scope,
    start_run,
    upgrade,
)

__all__ = ["BaselineScore", "EvalOutcome", "evaluate_registered_agent"]

#: `EvalOutcome.verdict` values.
ABOVE_UNTRAINED = "above_untrained"
NOT_ABOVE_UNTRAINED = "not_above_untrained"


@dataclass
class BaselineScore:
    """The untrained base's accuracy on the same items, its SQL run, and whether that run was reused."""

    accuracy: float
    run_id: int
    reused: bool

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"accuracy": self.accuracy, "run_id": self.run_id, "reused": self.reused}


@dataclass
class EvalOutcome:
    """One evaluated suite: its SQL run id, item count, summary metrics and the untrained baseline, if scored."""

    suite: str
    run_id: int
    items: int
    metrics: dict[str, float] = field(default_factory=dict)
    baseline: BaselineScore | None = None

    @property
    def verdict(self) -> str | None:
        """`not_above_untrained` when the trained agent scores at or below the untrained base (None: not compared)."""
        if self.baseline is None:
            return None
        return ABOVE_UNTRAINED if self.metrics["accuracy"] > self.baseline.accuracy else NOT_ABOVE_UNTRAINED

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form (for the job summary)."""
        return {
            "suite": self.suite,
            "run_id": self.run_id,
            "items": self.items,
            "metrics": self.metrics,
            "baseline": self.baseline.as_dict() if self.baseline is not None else None,
            "verdict": self.verdict,
        }


@contextmanager
def _adapters_off(model: MoRModel) -> Iterator[None]:
    """Every MoR layer returns the base layer's output (zero adapters) for the duration of the block."""
    model.disable_adapter_layers()
    try:
        yield
    finally:
        model.enable_adapter_layers()


def _untrained_uri(agent_dir: LocalAgentDir) -> str:
    base = agent_dir.base
    return f"untrained:{base.kind}:{base.name}" + (f"@{base.revision}" if base.revision else "")


def _baseline_config(
    suite: str, spec: TrainJobSpec, agent_dir: LocalAgentDir, prepared: PreparedData
) -> dict[str, Any]:
    """What the untrained score depends on: the base (its files' hashes), the items, the roles and the loop."""
    assert spec.eval is not None
    base_files = {
        name: meta["sha256"]
        for name, meta in agent_dir.manifest.get("files", {}).items()
        if name.startswith((f"{BASE_DIR}/", f"{TOKENIZER_DIR}/"))
    }
    return {
        "suite": suite,
        "baseline": "untrained",
        "base": agent_dir.base.to_dict(),
        "base_files": base_files,
        "roles": agent_dir.roles,
        "max_items": spec.eval.max_items,
        "max_steps": spec.eval.max_steps,
        "test_set_sha256": file_sha256(prepared.dataset.directory / "test.jsonl"),
    }


def _run_suite(
    agent: Agent,
    prepared: PreparedData,
    *,
    engine: Any,
    model_row: dict[str, Any],
    model_uri: str,
    suite: str,
    config: dict[str, Any],
    spec: TrainJobSpec,
    session: TrackingSession,
    job_id: str | None,
    progress: ProgressReporter,
    stage: str,
    variant: str | None = None,
) -> tuple[int, SyntheticEvalResult, dict[str, float]]:
    """Evaluate `agent` on one suite as one recorded run (see `mor.evals.record`; MLflow prefix
    `eval/<suite>[/<variant>]`); returns the run id, result and metrics."""
    assert spec.eval is not None
    with session_scope(engine) as db:
        evaluated = get_or_create_model(session=db, **model_row)
        run = create_run(
            session=db,
            suite=suite,
            categories=["all"],
            model_uri=model_uri,
            triggered_by=f"job:{job_id or spec.name}",
            ray_job_id=job_id,
            model=evaluated,
            config=config,
        )
        start_run(session=db, run_id=run.id)
        run_id = run.id
    try:
        result = evaluate_synthetic(
            agent,
            prepared.dataset.test,
            max_items=spec.eval.max_items,
            batch_size=spec.eval.batch_size,
            progress=lambda done, total: progress.report(stage, done, total),
        )
        rows, metrics = synthetic_rows(result)
        record_result(engine, run_id, rows=rows, metrics=metrics, tracking=session, variant=variant)
    except BaseException as error:
        record_failure(engine, run_id, error, mlflow_run_id=session.run_id)
        raise
    return run_id, result, metrics


def evaluate_registered_agent(
    spec: TrainJobSpec,
    registered: RegisteredAgent,
    prepared: PreparedData,
    settings: Settings,
    *,
    session: TrackingSession,
    progress: ProgressReporter,
    job_id: str | None,
) -> list[EvalOutcome]:
    """Evaluate the registered version (loaded back through the registry) on every suite of the spec, and the
    untrained baseline beside it unless `eval.baseline` is `none`."""
    assert spec.eval is not None
    agent_dir = resolve_model(registered.uri, settings)
    model, tokenizer = load_agent_model(agent_dir)
    agent = build_agent(model, tokenizer, config=AgentConfig(max_steps=spec.eval.max_steps))
    base_model = f"{agent_dir.base.kind}:{agent_dir.base.name}"
    upgrade(settings.db_url)
    engine = make_engine(settings.db_url)
    outcomes: list[EvalOutcome] = []
    try:
        for suite in spec.eval.suites:
            config = {
                "suite": suite,
                "max_items": spec.eval.max_items,
                "max_steps": spec.eval.max_steps,
                "batch_size": spec.eval.batch_size,
                "test_trajectories": len(prepared.dataset.test),
            }
            trained_row = {
                "uri": registered.uri,
                "name": registered.name,
                "version": registered.version,
                "base_model": base_model,
            }
            run_id, result, metrics = _run_suite(
                agent,
                prepared,
                engine=engine,
                model_row=trained_row,
                model_uri=registered.uri,
                suite=suite,
                config=config,
                spec=spec,
                session=session,
                job_id=job_id,
                progress=progress,
                stage="eval",
            )
            progress.report("eval", len(result.items), len(result.items), {"accuracy": metrics["accuracy"]})
            outcome = EvalOutcome(suite=suite, run_id=run_id, items=len(result.items), metrics=metrics)
            if spec.eval.baseline == "untrained":
                outcome.baseline = _untrained_baseline(
                    agent,
                    model,
                    agent_dir,
                    prepared,
                    engine=engine,
                    suite=suite,
                    spec=spec,
                    session=session,
                    job_id=job_id,
                    progress=progress,
                )
                session.set_tags({f"mor.eval.{suite}.verdict": str(outcome.verdict)})
            outcomes.append(outcome)
    finally:
        engine.dispose()
    return outcomes


def _untrained_baseline(
    agent: Agent,
    model: MoRModel,
    agent_dir: LocalAgentDir,
    prepared: PreparedData,
    *,
    engine: Any,
    suite: str,
    spec: TrainJobSpec,
    session: TrackingSession,
    job_id: str | None,
    progress: ProgressReporter,
) -> BaselineScore:
    """The untrained base's accuracy on the suite: a stored run with the same configuration, or a new one."""
    config = _baseline_config(suite, spec, agent_dir, prepared)
    uri = _untrained_uri(agent_dir)
    with session_scope(engine) as db:
        found = reusable_run(session=db, suite=suite, model_uri=uri, config_hash=hash_config(config))
        found_id, stored = (found.id, canonical_metrics(found.summary)) if found is not None else (None, {})
    if found_id is not None and "accuracy" in stored:
        session.log_summary(stored, prefix=mlflow_prefix(suite, "untrained"))
        progress.report("baseline", 1, 1, {"accuracy": float(stored["accuracy"]), "reused": 1.0})
        return BaselineScore(accuracy=float(stored["accuracy"]), run_id=found_id, reused=True)
    row = {
        "uri": uri,
        "name": f"untrained {agent_dir.base.name}",
        "version": None,
        "base_model": f"{agent_dir.base.kind}:{agent_dir.base.name}",
    }
    with _adapters_off(model):
        run_id, result, metrics = _run_suite(
            agent,
            prepared,
            engine=engine,
            model_row=row,
            model_uri=uri,
            suite=suite,
            config=config,
            spec=spec,
            session=session,
            job_id=job_id,
            progress=progress,
            stage="baseline",
            variant="untrained",
        )
    progress.report("baseline", len(result.items), len(result.items), {"accuracy": metrics["accuracy"]})
    return BaselineScore(accuracy=metrics["accuracy"], run_id=run_id, reused=False)
