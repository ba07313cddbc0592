"""Recording an evaluation run, the same way for every caller (`mor eval run`, schedules and training jobs).

One naming scheme for summary metrics, in SQL and MLflow alike: `items`, `accuracy`, `accuracy/<category>`,
`failures/<role>`, `reasons/<reason>` and `mean_latency_s`, plus what a suite adds (`call_accuracy`, `sopr`,
`summary/<column>`, ...). MLflow holds them as `eval/<suite>/<name>` (`eval/<suite>/<variant>/<name>` for a variant
such as the untrained baseline). Training jobs before this scheme stored `failures.<role>` and
`accuracy.<category>`; `canonical_metrics` reads both.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:  # the CLI reads metric names through this module: no SQLAlchemy or agent at import time
    from sqlalchemy import Engine

    from mor.evals.synthetic import SyntheticEvalResult
    from mor.store import NewItemResult

__all__ = [
    "SummaryLog",
    "canonical_metrics",
    "failures_by_role",
    "mlflow_prefix",
    "record_failure",
    "record_result",
    "row_metrics",
    "synthetic_rows",
]

# Keys of the dotted scheme training jobs wrote before, and their names now.
_OLD_PREFIXES = {"failures.": "failures/", "accuracy.": "accuracy/"}


class SummaryLog(Protocol):
    """Where a summary goes besides SQL: an MLflow run (`mor.registry.TrackingSession`)."""

    @property
    def run_id(self) -> str: ...

    def log_summary(self, metrics: Mapping[str, float], *, prefix: str) -> dict[str, float]: ...


def mlflow_prefix(suite: str, variant: str | None = None) -> str:
    """`eval/<suite>`, or `eval/<suite>/<variant>` (e.g. `untrained`): the MLflow prefix of a run's summary."""
    return f"eval/{suite}" + (f"/{variant}" if variant else "")


def row_metrics(rows: Sequence[NewItemResult], *, reasons: bool = True) -> dict[str, float]:
    """Flat metrics of any suite's rows: `items`, `accuracy`, `accuracy/<category>`, `failures/<role>`,
    `reasons/<reason>` (unless `reasons` is False: free-text reasons are no metric names) and `mean_latency_s`."""
    metrics: dict[str, float] = {
        "items": float(len(rows)),
        "accuracy": sum(row.passed for row in rows) / len(rows) if rows else 0.0,
    }
    by_category: dict[str, list[bool]] = {}
    for row in rows:
        by_category.setdefault(row.category, []).append(row.passed)
    for category, flags in by_category.items():
        metrics[f"accuracy/{category}"] = sum(flags) / len(flags)
    for role, count in Counter(row.failing_role for row in rows if row.failing_role).items():
        metrics[f"failures/{role}"] = float(count)
    if reasons:
        for reason, count in Counter(row.failure_reason for row in rows if row.failure_reason).items():
            metrics[f"reasons/{reason}"] = float(count)
    latencies = [row.latency_ms for row in rows if row.latency_ms is not None]
    if latencies:
        metrics["mean_latency_s"] = sum(latencies) / len(latencies) / 1000.0
    return metrics


def synthetic_rows(result: SyntheticEvalResult) -> tuple[list[NewItemResult], dict[str, float]]:
    """The item rows and summary metrics of a synthetic evaluation (its reasons are free text: no `reasons/`)."""
    from mor.store import NewItemResult

    rows = [
        NewItemResult(
            category=item.category or "all",
            item_id=item.item_id,
            passed=item.passed,
            failure_reason=item.failure_reason,
            failing_role=item.failing_role,
            detail=item.failure_reason,
            output={"text": item.output, "calls": item.predicted_calls, "expected": item.expected_calls},
            latency_ms=round(item.latency_s * 1000.0, 3),
        )
        for item in result.items
    ]
    metrics = row_metrics(rows, reasons=False)
    metrics.update({"call_accuracy": result.summary.call_accuracy, "answer_accuracy": result.summary.answer_accuracy})
    return rows, metrics


def canonical_metrics(summary: Mapping[str, Any] | None) -> dict[str, Any]:
    """A stored summary in today's names: `failures.<role>` → `failures/<role>`, `accuracy.<category>` →
    `accuracy/<category>` (the names training jobs used before); other keys unchanged."""
    out: dict[str, Any] = {}
    for key, value in (summary or {}).items():
        old = next((prefix for prefix in _OLD_PREFIXES if key.startswith(prefix)), None)
        out.setdefault(_OLD_PREFIXES[old] + key.removeprefix(old) if old else key, value)
    return out


def failures_by_role(summary: Mapping[str, Any] | None) -> dict[str, int]:
    """Failed items per role from a summary, in either naming scheme (roles with no failure left out)."""
    return {
        key.removeprefix("failures/"): int(value)
        for key, value in canonical_metrics(summary).items()
        if key.startswith("failures/") and value
    }


def record_result(
    engine: Engine,
    run_id: int,
    *,
    rows: Sequence[NewItemResult],
    metrics: Mapping[str, float],
    judge_kind: str | None = None,
    tracking: SummaryLog | None = None,
    variant: str | None = None,
) -> None:
    """Finish the running run `run_id` as succeeded: the summary to MLflow (when `tracking` is given) under
    `mlflow_prefix(suite, variant)`, then its item rows and summary to SQL, linked to that MLflow run."""
    from mor.store import add_item_results, finish_run, get_run, session_scope

    with session_scope(engine) as session:
        suite = get_run(session=session, run_id=run_id).suite
    if tracking is not None:
        tracking.log_summary(metrics, prefix=mlflow_prefix(suite, variant))
    with session_scope(engine) as session:
        add_item_results(session=session, run_id=run_id, results=rows)
        finish_run(
            session=session,
            run_id=run_id,
            status="succeeded",
            summary=metrics,
            mlflow_run_id=tracking.run_id if tracking is not None else None,
            judge_kind=judge_kind,
        )


def record_failure(engine: Engine, run_id: int, error: BaseException, *, mlflow_run_id: str | None = None) -> None:
    """Finish run `run_id` as failed with `error` (its first line, then the traceback), unless it already ended."""
    from mor.store import error_text, finish_run, get_run, session_scope

    with session_scope(engine) as session:
        run = get_run(session=session, run_id=run_id)
        if run.status in ("queued", "running"):
            finish_run(
                session=session, run_id=run_id, status="failed", error=error_text(error), mlflow_run_id=mlflow_run_id
            )
