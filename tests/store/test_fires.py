"""The scheduler's SQL bookkeeping: once-only planning, claims under leases, settling finished runs."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, func, insert, select
from sqlalchemy.exc import IntegrityError

from mor.store import (
    EvalRun,
    ScheduleFire,
    claim_fire,
    claimable_fire_ids,
    create_schedule,
    due_schedules,
    fail_lost_job,
    finish_run,
    get_run,
    make_engine,
    next_wakeup,
    plan_schedule,
    record_submission,
    record_submission_failure,
    session_scope,
    set_paused,
    settle_fires,
    start_run,
    submitted_jobs,
)

UTC = UTC
CREATED = datetime(2025, 6, 1, 1, 0, tzinfo=UTC)
FIRE = datetime(2025, 6, 1, 2, 0, tzinfo=UTC)
NEXT = datetime(2025, 6, 2, 2, 0, tzinfo=UTC)
LEASE = timedelta(minutes=5)
NO_DELAY = timedelta(0)


def _planned_fire(engine: Engine, max_retries: int = 0) -> int:
    """A nightly schedule with its 02:00 fire planned; returns the fire id."""
    with session_scope(engine) as session:
        schedule = create_schedule(
            session=session,
            name="nightly",
            cron="0 2 * * *",
            suite="bfcl",
            categories=["simple_python"],
            model_uri="models:/mor-agent@champion",
            max_retries=max_retries,
            now=CREATED,
        )
        assert schedule.next_fire_at == FIRE
        assert plan_schedule(
            session=session, schedule_id=schedule.id, seen_next_fire_at=FIRE, times=[FIRE], next_fire_at=NEXT, now=FIRE
        ) == [FIRE]
        return session.scalars(select(ScheduleFire.id)).one()


def test_due_and_planning_happen_once(engine: Engine) -> None:
    with session_scope(engine) as session:
        schedule = create_schedule(
            session=session, name="nightly", cron="0 2 * * *", suite="bfcl", model_uri="m", now=CREATED
        )
    with session_scope(engine) as session:
        assert due_schedules(session=session, now=FIRE - timedelta(seconds=1)) == []
        assert [s.name for s in due_schedules(session=session, now=FIRE)] == ["nightly"]
        assert next_wakeup(session=session) == FIRE
    with session_scope(engine) as session:
        assert plan_schedule(
            session=session, schedule_id=schedule.id, seen_next_fire_at=FIRE, times=[FIRE], next_fire_at=NEXT, now=FIRE
        ) == [FIRE]
    # A second planner that saw the same next_fire_at loses the compare-and-set and creates nothing.
    with session_scope(engine) as session:
        assert (
            plan_schedule(
                session=session,
                schedule_id=schedule.id,
                seen_next_fire_at=FIRE,
                times=[FIRE],
                next_fire_at=NEXT,
                now=FIRE,
            )
            is None
        )
        assert due_schedules(session=session, now=FIRE + timedelta(hours=1)) == []
        assert session.scalar(select(func.count()).select_from(ScheduleFire)) == 1


def test_the_database_refuses_a_second_row_for_one_fire_time(engine: Engine) -> None:
    _planned_fire(engine)
    with pytest.raises(IntegrityError):
        with session_scope(engine) as session:
            session.execute(
                insert(ScheduleFire).values(
                    schedule_id=1,
                    scheduled_for=FIRE,
                    status="pending",
                    attempts=0,
                    not_before=FIRE,
                    created_at=FIRE,
                    updated_at=FIRE,
                )
            )


def test_claim_creates_the_run_and_only_one_claim_wins(engine: Engine) -> None:
    fire_id = _planned_fire(engine)
    with session_scope(engine) as session:
        assert claimable_fire_ids(session=session, now=FIRE, owner_id="a") == [fire_id]
        claim = claim_fire(session=session, fire_id=fire_id, owner_id="a", now=FIRE, lease=LEASE)
    assert claim is not None and claim.attempt == 1 and claim.reclaimed_from is None
    with session_scope(engine) as session:
        assert claim_fire(session=session, fire_id=fire_id, owner_id="b", now=FIRE, lease=LEASE) is None
        assert claimable_fire_ids(session=session, now=FIRE + timedelta(minutes=1), owner_id="b") == []
        run = get_run(session=session, run_id=claim.run_id)
        assert (run.status, run.triggered_by, run.scheduled_for, run.attempt) == ("queued", "schedule:nightly", FIRE, 1)
        assert run.categories == ["simple_python"]


def test_expired_lease_is_taken_over_with_the_same_run(engine: Engine) -> None:
    fire_id = _planned_fire(engine)
    with session_scope(engine) as session:
        first = claim_fire(session=session, fire_id=fire_id, owner_id="a", now=FIRE, lease=LEASE)
    later = FIRE + LEASE + timedelta(seconds=1)
    with session_scope(engine) as session:
        assert claimable_fire_ids(session=session, now=later, owner_id="b") == [fire_id]
        second = claim_fire(session=session, fire_id=fire_id, owner_id="b", now=later, lease=LEASE)
    assert second is not None and first is not None
    assert (second.run_id, second.attempt, second.reclaimed_from) == (first.run_id, 1, "a")
    # The first holder comes back too late: its recording is refused.
    with session_scope(engine) as session:
        assert not record_submission(session=session, fire_id=fire_id, owner_id="a", job_id="job-a", now=later)
        assert record_submission(session=session, fire_id=fire_id, owner_id="b", job_id="job-b", now=later)
    with session_scope(engine) as session:
        assert get_run(session=session, run_id=first.run_id).ray_job_id == "job-b"
        assert session.scalar(select(func.count()).select_from(EvalRun)) == 1


def test_own_claims_are_reclaimed_at_once_after_a_restart(engine: Engine) -> None:
    fire_id = _planned_fire(engine)
    with session_scope(engine) as session:
        claim_fire(session=session, fire_id=fire_id, owner_id="sched-0", now=FIRE, lease=LEASE)
    soon = FIRE + timedelta(seconds=2)
    with session_scope(engine) as session:
        assert claimable_fire_ids(session=session, now=soon, owner_id="sched-0") == []
        assert claimable_fire_ids(session=session, now=soon, owner_id="sched-0", reclaim_own=True) == [fire_id]
        assert (
            claim_fire(session=session, fire_id=fire_id, owner_id="sched-1", now=soon, lease=LEASE, reclaim_own=True)
            is None
        )
        again = claim_fire(
            session=session, fire_id=fire_id, owner_id="sched-0", now=soon, lease=LEASE, reclaim_own=True
        )
    assert again is not None and again.reclaimed_from == "sched-0"


def test_failures_retry_until_max_retries_then_fail(engine: Engine) -> None:
    fire_id = _planned_fire(engine, max_retries=1)
    with session_scope(engine) as session:
        claim = claim_fire(session=session, fire_id=fire_id, owner_id="a", now=FIRE, lease=LEASE)
        settled = record_submission_failure(
            session=session,
            fire_id=fire_id,
            owner_id="a",
            error="Boom: ray down",
            now=FIRE,
            retry_delay=timedelta(seconds=30),
        )
    assert settled is not None and settled.outcome == "retry" and settled.error == "Boom: ray down"
    with session_scope(engine) as session:
        assert claimable_fire_ids(session=session, now=FIRE + timedelta(seconds=29), owner_id="a") == []
        retry = claim_fire(
            session=session, fire_id=fire_id, owner_id="a", now=FIRE + timedelta(seconds=30), lease=LEASE
        )
        assert retry is not None and retry.attempt == 2 and retry.run_id != claim.run_id
        assert get_run(session=session, run_id=retry.run_id).retry_of == claim.run_id
        assert record_submission(session=session, fire_id=fire_id, owner_id="a", job_id="job-2", now=FIRE)
        assert [job.ray_job_id for job in submitted_jobs(session=session)] == ["job-2"]
        assert settle_fires(session=session, now=FIRE, retry_delay=NO_DELAY) == []  # still running
        finish_run(session=session, run_id=retry.run_id, status="failed", error="OOM in worker")
    with session_scope(engine) as session:
        final = settle_fires(session=session, now=FIRE, retry_delay=NO_DELAY)
        fire = session.get(ScheduleFire, fire_id)
        errors = [run.error for run in session.scalars(select(EvalRun).order_by(EvalRun.attempt))]
    assert [(s.outcome, s.error) for s in final] == [("failed", "OOM in worker")]
    assert (fire.status, fire.attempts, fire.last_error) == ("failed", 2, "OOM in worker")
    assert errors == ["Boom: ray down", "OOM in worker"]


def test_success_settles_and_lost_jobs_fail(engine: Engine) -> None:
    fire_id = _planned_fire(engine)
    with session_scope(engine) as session:
        claim = claim_fire(session=session, fire_id=fire_id, owner_id="a", now=FIRE, lease=LEASE)
        record_submission(session=session, fire_id=fire_id, owner_id="a", job_id="job-1", now=FIRE)
        assert fail_lost_job(session=session, run_id=claim.run_id, error="job-1 ended FAILED", now=FIRE)
        assert not fail_lost_job(session=session, run_id=claim.run_id, error="again", now=FIRE)
        settled = settle_fires(session=session, now=FIRE, retry_delay=NO_DELAY)
    assert [(s.outcome, s.error) for s in settled] == [("failed", "job-1 ended FAILED")]


def test_paused_schedules_are_neither_due_nor_claimable(engine: Engine) -> None:
    fire_id = _planned_fire(engine)
    with session_scope(engine) as session:
        set_paused(session=session, name="nightly", paused=True, now=FIRE)
    with session_scope(engine) as session:
        assert due_schedules(session=session, now=NEXT + timedelta(days=3)) == []
        assert claimable_fire_ids(session=session, now=FIRE, owner_id="a") == []
        assert next_wakeup(session=session) == FIRE  # the pending fire stays, waiting for a resume
    assert fire_id


def test_racing_threads_claim_a_fire_exactly_once(engine: Engine, database_url: str) -> None:
    fire_ids = []
    with session_scope(engine) as session:
        schedule = create_schedule(
            session=session, name="burst", cron="* * * * *", suite="bfcl", model_uri="m", now=CREATED
        )
        times = [CREATED + timedelta(minutes=1 + i) for i in range(20)]
        plan_schedule(
            session=session,
            schedule_id=schedule.id,
            seen_next_fire_at=schedule.next_fire_at,
            times=times,
            next_fire_at=times[-1] + timedelta(minutes=1),
            now=times[-1],
        )
        fire_ids = list(session.scalars(select(ScheduleFire.id).order_by(ScheduleFire.id)))
    wins: dict[str, list[int]] = {"a": [], "b": [], "c": []}
    barrier = threading.Barrier(len(wins))
    errors: list[BaseException] = []

    def _claim_all(owner: str) -> None:
        own_engine = make_engine(database_url)
        try:
            barrier.wait()
            for fire_id in fire_ids:
                with session_scope(own_engine) as session:
                    claim = claim_fire(session=session, fire_id=fire_id, owner_id=owner, now=times[-1], lease=LEASE)
                if claim is not None:
                    wins[owner].append(fire_id)
        except BaseException as exc:  # surfaced below
            errors.append(exc)
        finally:
            own_engine.dispose()

    threads = [threading.Thread(target=_claim_all, args=(owner,)) for owner in wins]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    claimed = sorted(fire_id for owned in wins.values() for fire_id in owned)
    assert claimed == fire_ids  # every fire claimed, none twice
    with session_scope(engine) as session:
        assert session.scalar(select(func.count()).select_from(EvalRun)) == len(fire_ids)


def test_a_claim_whose_job_already_reported_back_is_not_resubmitted(engine: Engine) -> None:
    fire_id = _planned_fire(engine)
    with session_scope(engine) as session:
        claim = claim_fire(session=session, fire_id=fire_id, owner_id="dead", now=FIRE, lease=LEASE)
    assert claim is not None
    # The holder died after submitting; the job started and reported its id before anyone recorded it.
    with session_scope(engine) as session:
        start_run(session=session, run_id=claim.run_id, ray_job_id="job-1", now=FIRE)
    later = FIRE + LEASE + timedelta(seconds=1)
    with session_scope(engine) as session:
        assert claim_fire(session=session, fire_id=fire_id, owner_id="alive", now=later, lease=LEASE) is None
        fire = session.get(ScheduleFire, fire_id)
        assert (fire.status, fire.attempts, fire.run_id) == ("submitted", 1, claim.run_id)
        assert session.scalar(select(func.count()).select_from(EvalRun)) == 1
