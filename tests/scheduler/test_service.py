"""The evaluation service on the session's real Ray cluster: a schedule a few seconds out fires on time, its eval
job runs on Ray and writes its rows to PostgreSQL; the same attempt is never submitted twice; a job stopped
half way is detected and retried as the schedule says."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient
from sqlalchemy import Engine, select

from mor.cluster import ClusterInfo
from mor.data import DEFAULT_ROLES
from mor.evals.targets import write_untrained_agent
from mor.scheduler import ScheduledFire
from mor.scheduler.service import RayEvalSubmitter, build_scheduler, serve
from mor.settings import Settings
from mor.store import (
    EvalRun,
    ScheduleFire,
    create_run,
    create_schedule,
    get_run,
    item_results,
    list_runs,
    make_engine,
    session_scope,
    upgrade,
    utcnow,
)
from mor.store.testing import reset_schema
from mor_testing import benchmarks_dir as _benchmarks_dir

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

UTC = UTC
TINY_MOR = {
    "rank": 2,
    "target_modules": ["q_proj", "v_proj"],
    "roles": {name: {"routed": 1, "top_k": 1} for name in DEFAULT_ROLES},
}


@pytest.fixture(scope="module")
def agent_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("agent")
    texts = ["<|user|> Find the area of a triangle with a base of 10 units. <|reasoner|> Next: executor <|end|>"] * 10
    write_untrained_agent(root / "agent", texts=texts, cache_dir=root / "cache", mor_config=TINY_MOR)
    return root / "agent"


@pytest.fixture
def settings(local_cluster: ClusterInfo, ray_settings: Settings, postgres_url: str, tmp_path: Path) -> Settings:
    """The session cluster's home (so the service finds that cluster), results in PostgreSQL, MLflow in tmp."""
    reset_schema(postgres_url)
    return ray_settings.model_copy(
        update={
            "database_url": postgres_url,
            "mlflow_tracking_uri": f"sqlite:///{tmp_path / 'mlflow.db'}",
        }
    )


@pytest.fixture
def engine(settings: Settings) -> Iterator[Engine]:
    upgrade(settings.db_url)
    engine = make_engine(settings.db_url)
    yield engine
    engine.dispose()


def _wait(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(0.5)


def _fires(engine: Engine) -> list[ScheduleFire]:
    with session_scope(engine) as session:
        return list(session.scalars(select(ScheduleFire).order_by(ScheduleFire.id)))


def _runs(engine: Engine) -> list[EvalRun]:
    with session_scope(engine) as session:
        return sorted(list_runs(session=session), key=lambda run: run.id)


def test_a_schedule_fires_on_time_through_ray_into_postgresql(
    settings: Settings, engine: Engine, agent_dir: Path
) -> None:
    target = (utcnow() + timedelta(seconds=4)).replace(microsecond=0)
    cron = f"{target.minute} {target.hour} {target.day} {target.month} * {target.second}"
    config = {"max_items": 2, "max_new_tokens": 4, "data_dir": str(_benchmarks_dir())}
    with session_scope(engine) as session:
        create_schedule(
            session=session,
            name="soon",
            cron=cron,
            suite="bfcl",
            categories=["simple_python"],
            model_uri=str(agent_dir),
            config=config,
            now=utcnow(),
        )
    stop = threading.Event()
    service = threading.Thread(
        target=serve, args=(settings,), kwargs={"poll_seconds": 1.0, "stop_event": stop, "owner_id": "test-service"}
    )
    service.start()
    try:
        _wait(lambda: any(fire.status == "succeeded" for fire in _fires(engine)), 240, "the fire to succeed")
    finally:
        stop.set()
        service.join(timeout=30)
    assert not service.is_alive()

    [fire] = _fires(engine)
    [run] = _runs(engine)
    assert fire.scheduled_for.replace(tzinfo=UTC) == target and fire.run_id == run.id and fire.attempts == 1
    assert (run.status, run.triggered_by, run.attempt) == ("succeeded", "schedule:soon", 1)
    assert run.ray_job_id == f"mor-soon-{target:%Y%m%dT%H%M%SZ}-run{run.id}"
    assert run.created_at is not None
    lateness = (run.created_at.replace(tzinfo=UTC) - target).total_seconds()
    assert 0 <= lateness < 5.0, f"the run was created {lateness:.2f} s after its cron time"

    with session_scope(engine) as session:
        rows = item_results(session=session, run_id=run.id)
    assert [(row.item_id, row.passed, row.failing_role) for row in rows] == [
        ("simple_python_0", False, "reasoner"),
        ("simple_python_1", False, "reasoner"),
    ]
    assert run.summary is not None and run.summary["accuracy/simple_python"] == 0.0

    info = RayEvalSubmitter(settings).client.wait(run.ray_job_id, timeout_s=60)  # the driver exits after the row
    assert info.status == "SUCCEEDED" and info.metadata["mor.schedule"] == "soon"
    assert info.metadata["mor.eval_run_id"] == str(run.id)
    assert MlflowClient(settings.tracking_uri).get_run(run.mlflow_run_id).data.tags["mor.eval_run_id"] == str(run.id)


def test_fire_is_idempotent_per_submission_id(settings: Settings, engine: Engine, tmp_path: Path) -> None:
    with session_scope(engine) as session:
        run = create_run(
            session=session,
            suite="bfcl",
            categories=["simple_python"],
            model_uri=str(tmp_path / "missing-agent"),
            triggered_by="schedule:twice",
        )
    scheduled = ScheduledFire(
        id=1,
        name="twice",
        cron="0 2 * * *",
        suite="bfcl",
        categories=("simple_python",),
        model_uri=str(tmp_path / "missing-agent"),
        timezone="UTC",
        catch_up="run_once",
        max_retries=0,
        scheduled_for=datetime(2025, 6, 1, 2, tzinfo=UTC),
        run_id=run.id,
        attempt=1,
    )
    submitter = RayEvalSubmitter(settings)
    first = submitter.fire(scheduled, scheduled.scheduled_for)
    second = submitter.fire(scheduled, scheduled.scheduled_for)  # a restarted scheduler submitting it again
    assert first == second == scheduled.submission_id
    jobs = submitter.client.list(metadata={"mor.eval_run_id": str(run.id), "mor.schedule": "twice"})
    assert [job.job_id for job in jobs] == [first]
    assert submitter.job_status("mor-no-such-job") is None
    submitter.client.wait(first, timeout_s=180)
    assert submitter.job_status(first) == "FAILED"  # the model does not exist: the job records that and fails
    with session_scope(engine) as session:
        failed = get_run(session=session, run_id=run.id)
    assert failed.status == "failed" and failed.error is not None and "RegistryError" in failed.error


def test_a_stopped_job_is_failed_and_retried(settings: Settings, engine: Engine, agent_dir: Path) -> None:
    now = utcnow()
    config = {"max_items": 2, "max_new_tokens": 4, "data_dir": str(_benchmarks_dir())}
    with session_scope(engine) as session:
        create_schedule(
            session=session,
            name="retry",
            cron="0 0 1 1 *",
            suite="bfcl",
            categories=["simple_python"],
            model_uri=str(agent_dir),
            config=config,
            max_retries=1,
            now=now - timedelta(days=400),
        )
    scheduler = build_scheduler(
        settings, owner_id="retrying", retry_delay=timedelta(0), misfire_grace=timedelta(days=800)
    )
    submitter = RayEvalSubmitter(settings)
    try:
        report = scheduler.tick()  # the missed new-year fire is caught up (run_once) and submitted
        [fired] = report.submitted
        assert fired.job_id is not None
        submitter.client.stop(fired.job_id)  # the job dies before it finishes its run
        submitter.client.wait(fired.job_id, timeout_s=120)
        _wait(
            lambda: scheduler.tick().lost_jobs == [fired.run_id] or _runs(engine)[0].status == "failed",
            60,
            "the stopped job to be noticed",
        )
        _wait(lambda: len(_runs(engine)) == 2 and _runs(engine)[1].ray_job_id is not None, 60, "the retry")
        _wait(
            lambda: scheduler.tick() is not None and _fires(engine)[0].status in ("succeeded", "failed"),
            240,
            "the retry to finish",
        )
    finally:
        scheduler.engine.dispose()
    first, second = _runs(engine)
    assert first.status == "failed" and first.error is not None and "ended STOPPED" in first.error
    assert (second.status, second.attempt, second.retry_of) == ("succeeded", 2, first.id)
    [fire] = _fires(engine)
    assert (fire.status, fire.attempts, fire.run_id) == ("succeeded", 2, second.id)
