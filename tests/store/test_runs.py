"""Runs and item results: lifecycle, listing, score history, comparison."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import IntegrityError

from mor.store import (
    InvalidValueError,
    NewItemResult,
    NotFoundError,
    StoreError,
    add_item_results,
    compare_runs,
    create_run,
    finish_run,
    get_or_create_model,
    get_run,
    hash_config,
    item_results,
    list_runs,
    make_engine,
    score_history,
    session_scope,
    start_run,
    upgrade,
)

T0 = datetime(2025, 6, 1, 2, 0, tzinfo=UTC)


def _finished_run(
    engine: Engine,
    *,
    version: str,
    at: datetime,
    verdicts: dict[str, list[bool]],
    judge_kind: str | None = None,
    suite: str = "bfcl",
) -> int:
    """A succeeded run of models:/mor-agent@champion resolved to `version`, with one item per verdict."""
    with session_scope(engine) as session:
        model = get_or_create_model(
            session=session,
            uri="models:/mor-agent@champion",
            name="mor-agent",
            version=version,
            base_model="builtin:tiny-llama",
        )
        run = create_run(
            session=session,
            suite=suite,
            categories=sorted(verdicts),
            model_uri="models:/mor-agent@champion",
            triggered_by="user:ada",
            judge_kind=judge_kind,
            now=at,
        )
        start_run(session=session, run_id=run.id, model=model, ray_job_id=f"raysubmit_{run.id}", now=at)
        add_item_results(
            session=session,
            run_id=run.id,
            results=[
                NewItemResult(
                    category=category,
                    item_id=f"{category}_{index}",
                    passed=passed,
                    failure_reason=None if passed else "wrong_value",
                    failing_role=None if passed else "executor",
                    output=[{"f": {"x": index}}],
                    latency_ms=12.5,
                )
                for category, passes in verdicts.items()
                for index, passed in enumerate(passes)
            ],
        )
        finish_run(
            session=session,
            run_id=run.id,
            status="succeeded",
            summary={"overall": 0.5},
            mlflow_run_id="abc123",
            now=at + timedelta(minutes=5),
        )
        return run.id


def test_run_lifecycle(engine: Engine) -> None:
    config = {"mode": "dfsdt", "endpoint": "in-process"}
    with session_scope(engine) as session:
        run = create_run(
            session=session,
            suite="stabletoolbench",
            categories=["G1_instruction"],
            model_uri="models:/mor-agent@champion",
            triggered_by="user:ada",
            config=config,
            now=T0,
        )
        assert (run.status, run.attempt, run.created_at) == ("queued", 1, T0)
        assert run.config_hash == hash_config({"endpoint": "in-process", "mode": "dfsdt"})
        model = get_or_create_model(session=session, uri="models:/mor-agent@champion", name="mor-agent", version="7")
        start_run(session=session, run_id=run.id, model=model, ray_job_id="raysubmit_1", now=T0 + timedelta(seconds=3))
        finish_run(
            session=session,
            run_id=run.id,
            status="failed",
            error="judge endpoint unreachable",
            judge_kind="llm",
            now=T0 + timedelta(seconds=9),
        )
    with session_scope(engine) as session:
        loaded = get_run(session=session, run_id=run.id)
        assert loaded.status == "failed"
        assert loaded.error == "judge endpoint unreachable"
        assert loaded.judge_kind == "llm"
        assert loaded.ray_job_id == "raysubmit_1"
        assert (loaded.model.name, loaded.model.version) == ("mor-agent", "7")
        assert loaded.finished_at - loaded.started_at == timedelta(seconds=6)
        assert loaded.categories == ["G1_instruction"]


def test_run_rules(engine: Engine) -> None:
    with session_scope(engine) as session:
        run = create_run(
            session=session, suite="bfcl", categories=["simple_python"], model_uri="m", triggered_by="user:ada"
        )
        with pytest.raises(InvalidValueError, match="status: got 'done', must be 'succeeded' or 'failed'"):
            finish_run(session=session, run_id=run.id, status="done")
        with pytest.raises(InvalidValueError, match="judge_kind: got 'gpt', must be one of llm, rule-based"):
            create_run(session=session, suite="bfcl", categories=[], model_uri="m", triggered_by="u", judge_kind="gpt")
        finish_run(session=session, run_id=run.id, status="succeeded", judge_kind="rule-based")
        with pytest.raises(StoreError, match="already succeeded, it cannot finish twice"):
            finish_run(session=session, run_id=run.id, status="failed")
        with pytest.raises(StoreError, match="only a queued run can start"):
            start_run(session=session, run_id=run.id)
        with pytest.raises(NotFoundError, match="run 999 not found; list runs with `mor eval results`"):
            get_run(session=session, run_id=999)


def test_evaluated_models_are_reused(engine: Engine) -> None:
    with session_scope(engine) as session:
        first = get_or_create_model(session=session, uri="models:/m@champion", name="m", version="3")
        again = get_or_create_model(
            session=session,
            uri="models:/m@champion",
            name="m",
            version="3",
            base_model="hub:meta-llama/Llama-3.2-1B-Instruct",
        )
        other = get_or_create_model(session=session, uri="models:/m@champion", name="m", version="4")
        unversioned = get_or_create_model(session=session, uri="http://localhost:8000/v1", name="gpt-x")
        same_unversioned = get_or_create_model(session=session, uri="http://localhost:8000/v1", name="gpt-x")
        assert first.id == again.id != other.id
        assert unversioned.id == same_unversioned.id
        assert again.base_model == "hub:meta-llama/Llama-3.2-1B-Instruct"


def test_item_results_are_stored_and_unique(engine: Engine) -> None:
    run_id = _finished_run(engine, version="1", at=T0, verdicts={"simple_python": [True, False], "multiple": [True]})
    with session_scope(engine) as session:
        rows = item_results(session=session, run_id=run_id)
        assert [(r.category, r.item_id, r.passed) for r in rows] == [
            ("multiple", "multiple_0", True),
            ("simple_python", "simple_python_0", True),
            ("simple_python", "simple_python_1", False),
        ]
        failed = rows[2]
        assert (failed.suite, failed.failure_reason, failed.failing_role) == ("bfcl", "wrong_value", "executor")
        assert failed.output == [{"f": {"x": 1}}]
        assert failed.latency_ms == 12.5
    with pytest.raises(IntegrityError):
        with session_scope(engine) as session:
            add_item_results(
                session=session,
                run_id=run_id,
                results=[NewItemResult(category="multiple", item_id="multiple_0", passed=False)],
            )


def test_list_runs_filters(engine: Engine) -> None:
    old = _finished_run(engine, version="1", at=T0, verdicts={"simple_python": [True]})
    new = _finished_run(engine, version="2", at=T0 + timedelta(days=1), verdicts={"simple_python": [True]})
    other = _finished_run(
        engine,
        version="2",
        at=T0 + timedelta(days=2),
        verdicts={"G1_tool": [True]},
        suite="stabletoolbench",
        judge_kind="rule-based",
    )
    with session_scope(engine) as session:
        assert [r.id for r in list_runs(session=session)] == [other, new, old]
        assert [r.id for r in list_runs(session=session, suite="bfcl")] == [new, old]
        assert [r.id for r in list_runs(session=session, since=T0 + timedelta(hours=1))] == [other, new]
        assert [r.id for r in list_runs(session=session, model="mor-agent", suite="bfcl")] == [new, old]
        assert [r.id for r in list_runs(session=session, model="models:/mor-agent@champion", limit=1)] == [other]
        assert list_runs(session=session, model="someone-else") == []
        assert list_runs(session=session, status="queued") == []


def test_score_history_per_category(engine: Engine) -> None:
    first = _finished_run(
        engine, version="1", at=T0, verdicts={"simple_python": [True, False, False, False], "multiple": [True, True]}
    )
    second = _finished_run(
        engine,
        version="2",
        at=T0 + timedelta(days=1),
        verdicts={"simple_python": [True, True, True, False], "multiple": [True, False]},
    )
    with session_scope(engine) as session:
        create_run(session=session, suite="bfcl", categories=["simple_python"], model_uri="m", triggered_by="u")
        points = score_history(session=session, suite="bfcl")
        assert [(p.run_id, p.category, p.passed, p.total, p.accuracy) for p in points] == [
            (first, "multiple", 2, 2, 1.0),
            (first, "simple_python", 1, 4, 0.25),
            (second, "multiple", 1, 2, 0.5),
            (second, "simple_python", 3, 4, 0.75),
        ]
        assert [p.model_version for p in points] == ["1", "1", "2", "2"]
        only = score_history(session=session, suite="bfcl", categories=["multiple"], since=T0 + timedelta(hours=1))
        assert [(p.run_id, p.accuracy) for p in only] == [(second, 0.5)]
        assert score_history(session=session, suite="bfcl", model="nobody") == []


def test_score_history_keeps_judge_kinds_apart(engine: Engine) -> None:
    judged = _finished_run(
        engine, version="1", at=T0, verdicts={"G1_tool": [True, False]}, suite="stabletoolbench", judge_kind="llm"
    )
    ruled = _finished_run(
        engine,
        version="1",
        at=T0 + timedelta(hours=1),
        verdicts={"G1_tool": [True, True]},
        suite="stabletoolbench",
        judge_kind="rule-based",
    )
    with session_scope(engine) as session:
        points = score_history(session=session, suite="stabletoolbench", judge_kind="llm")
        assert [(p.run_id, p.judge_kind, p.accuracy) for p in points] == [(judged, "llm", 0.5)]
        everything = score_history(session=session, suite="stabletoolbench")
        assert {(p.run_id, p.judge_kind) for p in everything} == {(judged, "llm"), (ruled, "rule-based")}
        with pytest.raises(InvalidValueError, match="never mixed"):
            compare_runs(session=session, run_a=judged, run_b=ruled)


def test_compare_runs(engine: Engine) -> None:
    a = _finished_run(
        engine, version="1", at=T0, verdicts={"simple_python": [True, False, True, False], "parallel": [True, True]}
    )
    b = _finished_run(
        engine,
        version="2",
        at=T0 + timedelta(days=1),
        verdicts={"simple_python": [True, True, False, True], "irrelevance": [True]},
    )
    with session_scope(engine) as session:
        comparison = compare_runs(session=session, run_a=a, run_b=b)
    by_category = {d.category: d for d in comparison.categories}
    assert list(by_category) == ["irrelevance", "parallel", "simple_python"]
    assert (by_category["simple_python"].accuracy_a, by_category["simple_python"].accuracy_b) == (0.5, 0.75)
    assert by_category["simple_python"].delta == pytest.approx(0.25)
    assert by_category["parallel"].accuracy_b is None and by_category["parallel"].delta is None
    assert by_category["irrelevance"].accuracy_a is None
    assert [(f.item_id, f.passed_a, f.passed_b) for f in comparison.flipped] == [
        ("simple_python_1", False, True),
        ("simple_python_2", True, False),
        ("simple_python_3", False, True),
    ]
    assert [f.item_id for f in comparison.fixed] == ["simple_python_1", "simple_python_3"]
    assert [(f.item_id, f.failure_reason_b, f.failing_role_b) for f in comparison.broken] == [
        ("simple_python_2", "wrong_value", "executor")
    ]


def test_compare_runs_of_different_suites_is_refused(engine: Engine) -> None:
    a = _finished_run(engine, version="1", at=T0, verdicts={"simple_python": [True]})
    b = _finished_run(engine, version="1", at=T0, verdicts={"G1_tool": [True]}, suite="stabletoolbench")
    with session_scope(engine) as session:
        with pytest.raises(InvalidValueError, match="only runs of one suite compare"):
            compare_runs(session=session, run_a=a, run_b=b)


def test_score_history_query_uses_the_category_index(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'plan.db'}"
    upgrade(url)
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            connection.exec_driver_sql("ANALYZE")
            plan = connection.execute(
                text(
                    "EXPLAIN QUERY PLAN SELECT run_id, count(*), sum(passed) FROM item_results "
                    "WHERE suite = 'bfcl' AND category = 'simple_python' GROUP BY run_id"
                )
            ).all()
    finally:
        engine.dispose()
    details = " ".join(str(row[-1]) for row in plan)
    assert "USING COVERING INDEX ix_item_results_suite_category_run" in details


def test_racing_jobs_record_one_evaluated_model(engine: Engine, database_url: str) -> None:
    barrier = threading.Barrier(3)
    ids: list[int] = []
    errors: list[BaseException] = []

    def _resolve() -> None:
        own_engine = make_engine(database_url)
        try:
            with session_scope(own_engine) as session:
                barrier.wait(timeout=30)
                model = get_or_create_model(session=session, uri="models:/m@champion", name="m", version="9")
                ids.append(model.id)
        except BaseException as exc:  # surfaced below
            errors.append(exc)
        finally:
            own_engine.dispose()

    threads = [threading.Thread(target=_resolve) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    assert len(set(ids)) == 1 and len(ids) == 3
