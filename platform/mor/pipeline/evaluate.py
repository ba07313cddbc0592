"""The eval stage: load the registered agent back from MLflow, run each suite, store every item in SQL."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mor.agent import Agent, AgentConfig, MoRRoleGenerator
from mor.cluster import ProgressReporter
from mor.evals.synthetic import SyntheticEvalResult, evaluate_synthetic
from mor.pipeline.agent_files import load_agent_model
from mor.pipeline.prepare import PreparedData
from mor.registry import RegisteredAgent, TrackingSession, resolve_model
from mor.settings import Settings
from mor.spec import TrainJobSpec
from mor.store import (
    NewItemResult,
    add_item_results,
    create_run,
    finish_run,
    get_or_create_model,
    make_engine,
    session_scope,
    start_run,
    upgrade,
)

__all__ = ["EvalOutcome", "evaluate_registered_agent", "store_synthetic_result"]


@dataclass
class EvalOutcome:
    """One evaluated suite: its SQL run id, item count and summary metrics."""

    suite: str
    run_id: int
    items: int
    metrics: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form (for the job summary)."""
        return {"suite": self.suite, "run_id": self.run_id, "items": self.items, "metrics": self.metrics}


def _summary_metrics(result: SyntheticEvalResult) -> dict[str, float]:
    summary = result.summary
    metrics = {
        "accuracy": summary.accuracy,
        "call_accuracy": summary.call_accuracy,
        "answer_accuracy": summary.answer_accuracy,
        "mean_latency_s": summary.mean_latency_s,
    }
    metrics.update({f"failures.{role}": float(count) for role, count in summary.failures_by_role.items()})
    metrics.update({f"accuracy.{category}": value for category, value in summary.accuracy_by_category.items()})
    return metrics


def store_synthetic_result(result: SyntheticEvalResult, *, session: Any, run_id: int) -> int:
    """Insert one row per evaluated item of a synthetic run."""
    rows = [
        NewItemResult(
            category=item.category or "all",
            item_id=item.item_id,
            passed=item.passed,
            failure_reason=item.failure_reason,
            failing_role=item.failing_role,
            output={"text": item.output, "calls": item.predicted_calls, "expected": item.expected_calls},
            latency_ms=round(item.latency_s * 1000.0, 3),
        )
        for item in result.items
    ]
    return add_item_results(session=session, run_id=run_id, results=rows)


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
    """Evaluate the registered version (loaded back through the registry) on every suite of the spec."""
    assert spec.eval is not None
    agent_dir = resolve_model(registered.uri, settings)
    model, tokenizer = load_agent_model(
        base_kind=agent_dir.base.kind, base_name=agent_dir.base.name, base_weights_dir=agent_dir.base_weights_dir,
        adapters=agent_dir.adapters, tokenizer_dir=agent_dir.tokenizer_dir, revision=agent_dir.base.revision,
    )
    agent = Agent(
        MoRRoleGenerator(model, pad_token_id=tokenizer.pad_token_id), tokenizer,
        roles=model.config.role_names, config=AgentConfig(max_steps=spec.eval.max_steps),
    )
    upgrade(settings.db_url)
    engine = make_engine(settings.db_url)
    outcomes: list[EvalOutcome] = []
    try:
        for suite in spec.eval.suites:
            with session_scope(engine) as db:
                evaluated = get_or_create_model(
                    session=db, uri=registered.uri, name=registered.name, version=registered.version,
                    base_model=f"{agent_dir.base.kind}:{agent_dir.base.name}",
                )
                run = create_run(
                    session=db, suite=suite, categories=["all"], model_uri=registered.uri,
                    triggered_by=f"job:{job_id or spec.name}", ray_job_id=job_id, model=evaluated,
                    config={"suite": suite, "max_items": spec.eval.max_items, "max_steps": spec.eval.max_steps,
                            "batch_size": spec.eval.batch_size,
                            "test_trajectories": len(prepared.dataset.test)},
                )
                start_run(session=db, run_id=run.id)
                run_id = run.id
            try:
                result = evaluate_synthetic(
                    agent, prepared.dataset.test, max_items=spec.eval.max_items, batch_size=spec.eval.batch_size,
                    progress=lambda done, total: progress.report("eval", done, total),
                )
                metrics = _summary_metrics(result)
                with session_scope(engine) as db:
                    store_synthetic_result(result, session=db, run_id=run_id)
                    finish_run(session=db, run_id=run_id, status="succeeded", summary=metrics,
                               mlflow_run_id=session.run_id)
            except BaseException as error:
                with session_scope(engine) as db:
                    finish_run(session=db, run_id=run_id, status="failed", error=f"{type(error).__name__}: {error}",
                               mlflow_run_id=session.run_id)
                raise
            session.log_summary(metrics, prefix=f"eval.{suite}")
            progress.report("eval", len(result.items), len(result.items), {"accuracy": metrics["accuracy"]})
            outcomes.append(EvalOutcome(suite=suite, run_id=run_id, items=len(result.items), metrics=metrics))
    finally:
        engine.dispose()
    return outcomes
