"""The scheduler loop: on-time fires, catch-up, retries, restart safety, several schedulers on one database."""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select

from mor.scheduler import ScheduledFire, Scheduler
from mor.store import (
    EvalRun,
    ScheduleFire,
    create_schedule,
    finish_run,
    get_schedule,
    list_runs,
    make_engine,
    session_scope,
    set_paused,
    start_run,
    utcnow,
)

from ._ledger import JobLedger, call_count, create_tables, jobs

UTC = UTC
WORKER = Path(__file__).with_name("_worker.py")


@pytest.fixture
def engine(engine: Engine) -> Engine:
    """The migrated database of tests/scheduler/conftest.py, plus the test job ledger's tables."""
    create_tables(engine)
    return engine


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now


def _schedule(engine: Engine, name: str, cron: str, now: datetime, **options: object) -> None:
    with session_scope(engine) as session:
        create_schedule(
            session=session,
            name=name,
            cron=cron,
            suite="bfcl",
            categories=["simple_python"],
            model_uri="models:/mor-agent@champion",
            now=now,
            **options,
        )


def _fired_times(engine: Engine, name: str | None = None) -> list[datetime]:
    return [
        datetime.fromisoformat(job["scheduled_for"])
        for job in jobs(engine)
        if name is None or job["schedule_name"] == name
    ]


def _runs(engine: Engine) -> list[EvalRun]:
    with session_scope(engine) as session:
        return sorted(list_runs(session=session), key=lambda run: (run.scheduled_for, run.attempt))


def test_a_cron_a_few_seconds_out_fires_on_time(engine: Engine) -> None:
    ledger = JobLedger(engine)
    target = (utcnow() + timedelta(seconds=3)).replace(microsecond=0)
    cron = f"{target.minute} {target.hour} {target.day} {target.month} * {target.second}"
    _schedule(engine, "soon", cron, utcnow())
    scheduler = Scheduler(engine, ledger)
    stop = threading.Event()
    thread = threading.Thread(target=scheduler.run_forever, kwargs={"poll_seconds": 1.0, "stop_event": stop})
    thread.start()
    try:
        deadline = time.monotonic() + 15
        while not jobs(engine) and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        stop.set()
        thread.join(timeout=10)
    assert not thread.is_alive()
    fired = jobs(engine)
    assert len(fired) == 1
    assert datetime.fromisoformat(fired[0]["scheduled_for"]) == target
    lateness = (fired[0]["submitted_at"].replace(tzinfo=UTC) - target).total_seconds()
    assert 0 <= lateness < 1.0, f"fired {lateness:.3f} s after its time"
    [run] = _runs(engine)
    assert (run.status, run.ray_job_id, run.scheduled_for, run.triggered_by) == (
        "queued",
        fired[0]["submission_id"],
        target,
        "schedule:soon",
    )


def test_tick_fires_each_due_time_once_and_records_the_run(engine: Engine) -> None:
    clock = FakeClock(datetime(2025, 6, 1, 1, 0, tzinfo=UTC))
    _schedule(engine, "nightly", "0 2 * * *", clock.now)
    scheduler = Scheduler(engine, JobLedger(engine), clock=clock, owner_id="s1")
    assert scheduler.tick().submitted == []
    clock.advance(hours=1, seconds=2)
    report = scheduler.tick()
    assert [(f.schedule_name, f.scheduled_for, f.attempt) for f in report.submitted] == [
        ("nightly", datetime(2025, 6, 1, 2, 0, tzinfo=UTC), 1)
    ]
    clock.advance(seconds=30)
    assert scheduler.tick().submitted == []
    [run] = _runs(engine)
    assert run.ray_job_id == report.submitted[0].job_id == f"mor-nightly-20250601T020000Z-run{run.id}"
    with session_scope(engine) as session:
        assert get_schedule(session=session, name="nightly").next_fire_at == datetime(2025, 6, 2, 2, tzinfo=UTC)
    # The job reports back; the next tick closes the fire.
    with session_scope(engine) as session:
        start_run(session=session, run_id=run.id)
        finish_run(session=session, run_id=run.id, status="succeeded", summary={"accuracy": 0.5})
    assert [s.outcome for s in scheduler.tick().settled] == ["succeeded"]
    with session_scope(engine) as session:
        assert session.scalars(select(ScheduleFire.status)).all() == ["succeeded"]


@pytest.mark.parametrize(
    ("policy", "expected_hours", "skipped"),
    [("run_all", [2, 3, 4, 5], None), ("run_once", [5], (2, 4)), ("skip", [], (2, 5))],
)
def test_catch_up_after_downtime(
    engine: Engine, policy: str, expected_hours: list[int], skipped: tuple[int, int] | None
) -> None:
    start = datetime(2025, 6, 1, 1, 30, tzinfo=UTC)
    _schedule(engine, "hourly", "0 * * * *", start, catch_up=policy)
    clock = FakeClock(datetime(2025, 6, 1, 5, 30, tzinfo=UTC))  # the scheduler was down from 01:30 to 05:30
    report = Scheduler(engine, JobLedger(engine), clock=clock).tick()
    assert _fired_times(engine) == [datetime(2025, 6, 1, h, tzinfo=UTC) for h in expected_hours]
    if skipped is None:
        assert report.skipped == []
    else:
        [span] = report.skipped
        assert (span.first.hour, span.last.hour) == skipped
    # Afterwards the schedule is back on its cron: 06:00 fires, whatever the policy.
    clock.now = datetime(2025, 6, 1, 6, 0, 1, tzinfo=UTC)
    Scheduler(engine, JobLedger(engine), clock=clock).tick()
    assert _fired_times(engine)[-1] == datetime(2025, 6, 1, 6, tzinfo=UTC)


def test_skip_still_fires_a_slightly_late_tick(engine: Engine) -> None:
    _schedule(engine, "hourly", "0 * * * *", datetime(2025, 6, 1, 1, 30, tzinfo=UTC), catch_up="skip")
    clock = FakeClock(datetime(2025, 6, 1, 2, 0, 20, tzinfo=UTC))
    Scheduler(engine, JobLedger(engine), clock=clock, misfire_grace=timedelta(minutes=1)).tick()
    assert _fired_times(engine) == [datetime(2025, 6, 1, 2, tzinfo=UTC)]


def test_failed_submissions_and_runs_are_retried_with_each_error_recorded(engine: Engine) -> None:
    clock = FakeClock(datetime(2025, 6, 1, 1, 0, tzinfo=UTC))
    _schedule(engine, "nightly", "0 2 * * *", clock.now, max_retries=2)
    scheduler = Scheduler(engine, JobLedger(engine, fail_attempts={1}), clock=clock, retry_delay=timedelta(minutes=10))
    clock.now = datetime(2025, 6, 1, 2, 0, 1, tzinfo=UTC)
    report = scheduler.tick()
    assert [(f.attempt, f.job_id) for f in report.submit_errors] == [(1, None)]
    assert report.submit_errors[0].error.startswith("RuntimeError: cluster refused the job (attempt 1)")
    assert [s.outcome for s in report.settled] == ["retry"]
    assert scheduler.tick().submitted == []  # the retry waits for retry_delay
    clock.advance(minutes=10)
    second = scheduler.tick()
    assert [f.attempt for f in second.submitted] == [2]
    # Attempt 2 is submitted, then the job fails while running; attempt 3 follows, then fails too: no retry left.
    for attempt in (2, 3):
        run = _runs(engine)[-1]
        assert run.attempt == attempt
        with session_scope(engine) as session:
            start_run(session=session, run_id=run.id)
            finish_run(session=session, run_id=run.id, status="failed", error=f"evaluation crashed ({attempt})")
        report = scheduler.tick()
        assert [s.outcome for s in report.settled] == ["retry" if attempt == 2 else "failed"]
        clock.advance(minutes=10)
        report = scheduler.tick()
        assert [f.attempt for f in report.submitted] == ([3] if attempt == 2 else [])
    runs = _runs(engine)
    assert [(r.attempt, r.status) for r in runs] == [(1, "failed"), (2, "failed"), (3, "failed")]
    assert runs[0].error.startswith("RuntimeError: cluster refused the job (attempt 1)")
    assert [r.error for r in runs[1:]] == ["evaluation crashed (2)", "evaluation crashed (3)"]
    assert [r.retry_of for r in runs] == [None, runs[0].id, runs[1].id]
    with session_scope(engine) as session:
        fire = session.scalars(select(ScheduleFire)).one()
    assert (fire.status, fire.attempts, fire.last_error) == ("failed", 3, "evaluation crashed (3)")


def test_a_job_that_dies_unreported_is_failed_and_retried(engine: Engine) -> None:
    clock = FakeClock(datetime(2025, 6, 1, 2, 0, 1, tzinfo=UTC))
    _schedule(engine, "nightly", "0 2 * * *", datetime(2025, 6, 1, 1, tzinfo=UTC), max_retries=1)
    states: dict[str, str] = {}
    scheduler = Scheduler(
        engine,
        JobLedger(engine),
        clock=clock,
        retry_delay=timedelta(0),
        job_status=lambda job_id: states.get(job_id, "RUNNING"),
    )
    [first] = scheduler.tick().submitted
    assert scheduler.tick().lost_jobs == []
    states[first.job_id] = "FAILED"
    report = scheduler.tick()
    assert report.lost_jobs == [first.run_id]
    assert [s.outcome for s in report.settled] == ["retry"]
    assert [f.attempt for f in report.submitted] == [2]
    assert _runs(engine)[0].error == f"job {first.job_id} ended FAILED without finishing run {first.run_id}"


def test_paused_schedules_do_not_fire(engine: Engine) -> None:
    clock = FakeClock(datetime(2025, 6, 1, 1, 0, tzinfo=UTC))
    _schedule(engine, "nightly", "0 2 * * *", clock.now)
    with session_scope(engine) as session:
        set_paused(session=session, name="nightly", paused=True, now=clock.now)
    clock.advance(days=2)
    assert Scheduler(engine, JobLedger(engine), clock=clock).tick().submitted == []
    assert jobs(engine) == []


class _Crash(BaseException):
    """Stands for the process dying (not an error the scheduler may catch)."""


def _crash() -> None:
    raise _Crash()


@pytest.mark.parametrize("crash_before", [False, True], ids=["after-submit", "before-submit"])
def test_restart_neither_loses_nor_repeats(engine: Engine, crash_before: bool) -> None:
    clock = FakeClock(datetime(2025, 6, 1, 2, 0, 1, tzinfo=UTC))
    _schedule(engine, "nightly", "0 2 * * *", datetime(2025, 6, 1, 1, tzinfo=UTC))
    crashing = Scheduler(
        engine, JobLedger(engine, crash=_crash, crash_before=crash_before), clock=clock, owner_id="sched-0"
    )
    with pytest.raises(_Crash):
        crashing.tick()
    with session_scope(engine) as session:
        fire = session.scalars(select(ScheduleFire)).one()
    assert (fire.status, fire.owner_id) == ("submitting", "sched-0")  # claimed, outcome unknown: detectable

    # Another scheduler leaves the claim alone while its lease runs...
    other = Scheduler(engine, JobLedger(engine), clock=clock, owner_id="sched-1")
    assert other.tick().submitted == []
    # ...the restarted one (same owner id) takes it back at once and submits the same attempt again.
    clock.advance(seconds=5)
    report = Scheduler(engine, JobLedger(engine), clock=clock, owner_id="sched-0").tick()
    assert [(f.attempt, f.run_id) for f in report.submitted] == [(1, fire.run_id)]
    assert call_count(engine) == 2
    [job] = jobs(engine)  # submitted at most once, whichever side of the crash
    [run] = _runs(engine)
    assert run.ray_job_id == job["submission_id"]


def test_restart_after_the_job_reported_back_does_not_resubmit(engine: Engine) -> None:
    clock = FakeClock(datetime(2025, 6, 1, 2, 0, 1, tzinfo=UTC))
    _schedule(engine, "nightly", "0 2 * * *", datetime(2025, 6, 1, 1, tzinfo=UTC))
    with pytest.raises(_Crash):
        Scheduler(engine, JobLedger(engine, crash=_crash), clock=clock, owner_id="sched-0").tick()
    [job] = jobs(engine)
    # While the scheduler is down, the job runs and reports back through its run row.
    with session_scope(engine) as session:
        start_run(session=session, run_id=job["run_id"], ray_job_id=job["submission_id"])
        finish_run(session=session, run_id=job["run_id"], status="succeeded")
    restarted = Scheduler(engine, JobLedger(engine), clock=clock, owner_id="sched-0")
    assert restarted.tick().submitted == []
    assert [s.outcome for s in restarted.tick().settled] == ["succeeded"]
    assert call_count(engine) == 1 and len(_runs(engine)) == 1


def test_a_dead_schedulers_claim_is_taken_over_after_its_lease(engine: Engine) -> None:
    clock = FakeClock(datetime(2025, 6, 1, 2, 0, 1, tzinfo=UTC))
    _schedule(engine, "nightly", "0 2 * * *", datetime(2025, 6, 1, 1, tzinfo=UTC))
    with pytest.raises(_Crash):
        Scheduler(
            engine, JobLedger(engine, crash=_crash), clock=clock, owner_id="dead", lease=timedelta(minutes=5)
        ).tick()
    survivor = Scheduler(engine, JobLedger(engine), clock=clock, owner_id="alive")
    clock.advance(minutes=4)
    assert survivor.tick().submitted == []
    clock.advance(minutes=2)
    assert len(survivor.tick().submitted) == 1
    assert len(jobs(engine)) == 1 and len(_runs(engine)) == 1


def test_restart_after_a_real_process_dies_mid_submission(engine: Engine, database_url: str) -> None:
    _schedule(engine, "nightly", "0 2 * * *", datetime(2025, 6, 1, 1, tzinfo=UTC))  # long due
    result = subprocess.run(
        [sys.executable, str(WORKER), database_url, "sched-0", "crash-after-submit"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 17, result.stderr
    assert len(jobs(engine)) == 1
    [run] = _runs(engine)
    assert run.ray_job_id is None  # submitted but never recorded
    Scheduler(engine, JobLedger(engine), owner_id="sched-0").tick()
    [job] = jobs(engine)
    [run] = _runs(engine)
    assert run.ray_job_id == job["submission_id"]


def test_two_scheduler_threads_share_the_work_without_double_fires(engine: Engine, database_url: str) -> None:
    start = datetime(2025, 6, 1, 0, 0, tzinfo=UTC)
    for name in ("a", "b", "c"):
        _schedule(engine, name, "*/5 * * * *", start, catch_up="run_all")
    clock = FakeClock(start + timedelta(hours=1))  # 12 due fires per schedule
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def _run(owner: str) -> None:
        own_engine = make_engine(database_url)
        try:
            scheduler = Scheduler(own_engine, JobLedger(own_engine, owner), clock=clock, owner_id=owner, max_backlog=4)
            barrier.wait(timeout=30)
            for _ in range(6):
                scheduler.tick()
        except BaseException as exc:  # surfaced below
            errors.append(exc)
        finally:
            own_engine.dispose()

    threads = [threading.Thread(target=_run, args=(owner,)) for owner in ("t1", "t2")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    expected = [start + timedelta(minutes=5 * i) for i in range(1, 13)]
    for name in ("a", "b", "c"):
        assert _fired_times(engine, name) == expected
    assert call_count(engine) == 36
    with session_scope(engine) as session:
        assert session.scalar(select(func.count()).select_from(EvalRun)) == 36


@pytest.mark.postgres
@pytest.mark.slow
def test_two_scheduler_processes_never_double_fire(postgres_url: str) -> None:
    from mor.store import latest_fire_time, upgrade
    from mor.store.testing import reset_schema

    reset_schema(postgres_url)
    upgrade(postgres_url)
    engine = make_engine(postgres_url)
    try:
        create_tables(engine)
        now = utcnow()
        # A backlog (run_all, 15 due minutes) and two crons firing every second while both processes serve.
        _schedule(engine, "backlog", "* * * * *", now - timedelta(minutes=15), catch_up="run_all")
        for name in ("every-second-1", "every-second-2"):
            _schedule(engine, name, "* * * * * *", now, catch_up="skip")
        start_at, serve_seconds = time.time() + 2.0, 4.0
        workers = [
            subprocess.Popen(
                [sys.executable, str(WORKER), postgres_url, owner, "serve", str(start_at), str(serve_seconds)],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for owner in ("proc-1", "proc-2")
        ]
        outputs = [worker.communicate(timeout=120) for worker in workers]
        assert [worker.returncode for worker in workers] == [0, 0], outputs
        fired = jobs(engine)
        keys = [(job["schedule_name"], job["scheduled_for"]) for job in fired]
        assert len(keys) == len(set(keys)), "a (schedule, time) fired twice"
        assert call_count(engine) == len(fired), "fire was called twice for one attempt"
        # Nothing lost: every minute of the backlog up to well before the end was fired, in order.
        must_have = latest_fire_time("* * * * *", "UTC", datetime.fromtimestamp(start_at + 1, UTC))
        backlog = _fired_times(engine, "backlog")
        first_due = backlog[0]
        assert first_due == latest_fire_time("* * * * *", "UTC", now - timedelta(minutes=15)) + timedelta(minutes=1)
        assert backlog == [first_due + timedelta(minutes=i) for i in range(len(backlog))]
        assert backlog[-1] >= must_have
        for name in ("every-second-1", "every-second-2"):
            seconds = _fired_times(engine, name)
            assert len(seconds) >= 3
            assert seconds == [seconds[0] + timedelta(seconds=i) for i in range(len(seconds))], "a second was lost"
        assert {job["owner"] for job in fired} == {"proc-1", "proc-2"}
    finally:
        engine.dispose()


def test_run_forever_survives_failing_ticks(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'unmigrated.db'}")  # no tables: every tick fails
    stop = threading.Event()
    scheduler = Scheduler(engine, lambda scheduled, at: "never")
    thread = threading.Thread(target=scheduler.run_forever, kwargs={"poll_seconds": 0.05, "stop_event": stop})
    with caplog.at_level(logging.ERROR, logger="mor.scheduler.loop"):
        thread.start()
        time.sleep(0.5)
        stop.set()
        thread.join(timeout=10)
    engine.dispose()
    assert not thread.is_alive()
    failures = [r for r in caplog.records if "tick failed" in r.getMessage()]
    assert len(failures) >= 2


def test_the_fire_callable_sees_the_schedule_and_its_run(engine: Engine) -> None:
    seen: list[ScheduledFire] = []

    def _fire(scheduled: ScheduledFire, scheduled_for: datetime) -> str:
        seen.append(scheduled)
        return scheduled.submission_id

    _schedule(engine, "nightly", "0 2 * * *", datetime(2025, 6, 1, 1, tzinfo=UTC), config={"mode": "dfsdt"})
    Scheduler(engine, _fire, clock=FakeClock(datetime(2025, 6, 1, 2, 0, 1, tzinfo=UTC))).tick()
    [scheduled] = seen
    [run] = _runs(engine)
    assert (scheduled.name, scheduled.suite, scheduled.categories, scheduled.model_uri) == (
        "nightly",
        "bfcl",
        ("simple_python",),
        "models:/mor-agent@champion",
    )
    assert (scheduled.run_id, scheduled.attempt, dict(scheduled.config)) == (run.id, 1, {"mode": "dfsdt"})
    assert run.config == {"mode": "dfsdt"}
