"""Recording a run: one metric naming scheme in SQL and MLflow, old dotted names read the same, failures kept."""

from __future__ import annotations

from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient
from sqlalchemy import Engine

from mor.evals.record import (
    canonical_metrics,
    failures_by_role,
    mlflow_prefix,
    record_failure,
    record_result,
    row_metrics,
    synthetic_rows,
)
from mor.registry import TrackingSession
from mor.settings import Settings
from mor.store import NewItemResult, create_run, get_run, item_results, session_scope, start_run
from mor_testing import synthetic_result


def test_row_metrics() -> None:
    rows = [
        NewItemResult("a", "1", True, latency_ms=100.0),
        NewItemResult("a", "2", False, "no_call", "reasoner", latency_ms=300.0),
        NewItemResult("b", "3", False, "wrong_value", "executor"),
    ]
    assert row_metrics(rows) == {
        "items": 3.0,
        "accuracy": pytest.approx(1 / 3),
        "accuracy/a": 0.5,
        "accuracy/b": 0.0,
        "failures/reasoner": 1.0,
        "failures/executor": 1.0,
        "reasons/no_call": 1.0,
        "reasons/wrong_value": 1.0,
        "mean_latency_s": pytest.approx(0.2),
    }
    assert row_metrics([]) == {"items": 0.0, "accuracy": 0.0}
    assert not any(key.startswith("reasons/") for key in row_metrics(rows, reasons=False))


def test_synthetic_rows_use_the_common_names() -> None:
    rows, metrics = synthetic_rows(synthetic_result())
    assert [(row.category, row.item_id, row.passed, row.failing_role) for row in rows] == [
        ("math", "t0", True, None),
        ("math", "t1", False, "executor"),
        ("weather", "t2", False, "executor"),
        ("all", "t3", False, "reasoner"),
    ]
    assert rows[2].detail == "made no call" and rows[0].latency_ms == 250.0
    assert metrics == {
        "items": 4.0,
        "accuracy": 0.25,
        "accuracy/math": 0.5,
        "accuracy/weather": 0.0,
        "accuracy/all": 0.0,
        "failures/executor": 2.0,
        "failures/reasoner": 1.0,
        "mean_latency_s": 0.25,
        "call_accuracy": 0.25,
        "answer_accuracy": 0.25,
    }  # free-text reasons are no metric names


def test_old_dotted_names_read_as_the_new_ones() -> None:
    old = {
        "accuracy": 0.5,
        "accuracy.math": 0.5,
        "failures.executor": 3.0,
        "failures.reasoner": 0.0,
        "mean_latency_s": 1.0,
    }
    assert canonical_metrics(old) == {
        "accuracy": 0.5,
        "accuracy/math": 0.5,
        "failures/executor": 3.0,
        "failures/reasoner": 0.0,
        "mean_latency_s": 1.0,
    }
    assert failures_by_role(old) == {"executor": 3}
    assert failures_by_role({"failures/summarizer": 2.0, "reasons/no_call": 2.0}) == {"summarizer": 2}
    assert canonical_metrics(None) == {} and failures_by_role(None) == {}
    assert (mlflow_prefix("bfcl"), mlflow_prefix("synthetic", "untrained")) == ("eval/bfcl", "eval/synthetic/untrained")


@pytest.fixture
def tracking_settings(tmp_path: Path) -> Settings:
    return Settings(
        home=tmp_path / "home",
        mlflow_tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}",
        database_url=None,
        ray_address=None,
        benchmarks_dir=None,
    )


def _running_run(engine: Engine, suite: str = "synthetic") -> int:
    with session_scope(engine) as session:
        run = create_run(
            session=session, suite=suite, categories=["all"], model_uri="models:/agent/1", triggered_by="job:test"
        )
        start_run(session=session, run_id=run.id)
        return run.id


def test_a_result_is_recorded_in_sql_and_mlflow(engine: Engine, tracking_settings: Settings) -> None:
    rows, metrics = synthetic_rows(synthetic_result())
    trained, baseline = _running_run(engine), _running_run(engine)
    with TrackingSession.start(tracking_settings, experiment="record-test") as tracking:
        record_result(engine, trained, rows=rows, metrics=metrics, tracking=tracking)
        record_result(
            engine, baseline, rows=rows[:1], metrics=row_metrics(rows[:1]), tracking=tracking, variant="untrained"
        )
    with session_scope(engine) as session:
        run = get_run(session=session, run_id=trained)
        assert (run.status, run.summary, run.mlflow_run_id) == ("succeeded", metrics, tracking.run_id)
        assert [row.item_id for row in item_results(session=session, run_id=trained)] == ["t3", "t0", "t1", "t2"]
    logged = MlflowClient(tracking_settings.tracking_uri).get_run(tracking.run_id).data.metrics
    assert logged["eval/synthetic/failures/executor"] == 2.0 and logged["eval/synthetic/accuracy/math"] == 0.5
    assert logged["eval/synthetic/untrained/accuracy"] == 1.0
    assert not any("." in key for key in logged)


def test_a_failure_is_recorded_once(engine: Engine) -> None:
    run_id = _running_run(engine)
    try:
        raise RuntimeError("the agent ran out of memory")
    except RuntimeError as error:
        record_failure(engine, run_id, error, mlflow_run_id="abc")
        record_failure(engine, run_id, ValueError("later"))  # the run ended already: left as it is
    with session_scope(engine) as session:
        run = get_run(session=session, run_id=run_id)
        assert (run.status, run.mlflow_run_id) == ("failed", "abc")
        assert (run.error or "").startswith("RuntimeError: the agent ran out of memory\n\nTraceback")
