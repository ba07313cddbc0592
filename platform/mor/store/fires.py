"""The scheduler's bookkeeping in SQL: planning fires, claiming them under leases, recording outcomes.

Every state change is a compare-and-set `UPDATE ... WHERE <the state we saw>`: of two processes racing for the
same row, exactly one sees a row count of 1. This works the same on PostgreSQL (row locks, READ COMMITTED
re-checks the WHERE after a concurrent commit) and on SQLite (mor's engines take the write lock at BEGIN).
The unique (schedule_id, scheduled_for) on schedule_fires backs it up: a fire row is created at most once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, and_, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from mor.store.errors import StoreError
from mor.store.models import TERMINAL_RUN_STATUSES, EvalRun, Schedule, ScheduleFire
from mor.store.runs import create_run

__all__ = [
    "Claim",
    "Settled",
    "SubmittedJob",
    "claim_fire",
    "claimable_fire_ids",
    "due_schedules",
    "fail_lost_job",
    "next_wakeup",
    "plan_schedule",
    "record_submission",
    "record_submission_failure",
    "settle_fires",
    "submitted_jobs",
]


@dataclass(frozen=True)
class Claim:
    """A fire this process now holds the lease on, with the run row of the attempt to submit."""

    fire_id: int
    schedule: Schedule  # detached, fully loaded
    scheduled_for: datetime
    run_id: int
    attempt: int
    reclaimed_from: str | None  # owner of the expired claim taken over, None for a fresh attempt


@dataclass(frozen=True)
class Settled:
    """What happened to a submitted fire whose run finished."""

    schedule_name: str
    scheduled_for: datetime
    run_id: int
    outcome: str  # "succeeded", "retry" (a new attempt is pending) or "failed" (no retry left)
    error: str | None


@dataclass(frozen=True)
class SubmittedJob:
    """A submitted fire whose run has not finished yet."""

    fire_id: int
    run_id: int
    ray_job_id: str | None


def due_schedules(*, session: Session, now: datetime) -> list[Schedule]:
    """Schedules not paused whose next fire time has come."""
    return list(
        session.scalars(
            select(Schedule)
            .where(Schedule.paused.is_(False), Schedule.next_fire_at.is_not(None), Schedule.next_fire_at <= now)
            .order_by(Schedule.next_fire_at, Schedule.id)
        )
    )


def plan_schedule(
    *,
    session: Session,
    schedule_id: int,
    seen_next_fire_at: datetime,
    times: Sequence[datetime],
    next_fire_at: datetime,
    now: datetime,
) -> list[datetime] | None:
    """Create fire rows for `times` and move the schedule to `next_fire_at`, if it still stands where we saw it.

    Returns the times whose rows this call created, or None when another process planned the schedule first.
    """
    moved = session.execute(
        update(Schedule)
        .where(Schedule.id == schedule_id, Schedule.next_fire_at == seen_next_fire_at, Schedule.paused.is_(False))
        .values(next_fire_at=next_fire_at, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    if moved.rowcount != 1:
        return None
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    created = []
    for scheduled_for in times:
        values = {
            "schedule_id": schedule_id,
            "scheduled_for": scheduled_for,
            "status": "pending",
            "attempts": 0,
            "not_before": scheduled_for,
            "created_at": now,
            "updated_at": now,
        }
        statement = (
            dialect.insert(ScheduleFire)
            .values(**values)
            .on_conflict_do_nothing(index_elements=["schedule_id", "scheduled_for"])
            .returning(ScheduleFire.id)
        )
        if session.execute(statement).first() is not None:  # no row back: that time was planned already
            created.append(scheduled_for)
    return created


def _stale_claim(now: datetime, owner_id: str, reclaim_own: bool) -> ColumnElement[bool]:
    """A claim whose lease expired, or (on a restarted owner's first tick) one this owner left behind."""
    expired = ScheduleFire.lease_expires_at < now
    return or_(expired, ScheduleFire.owner_id == owner_id) if reclaim_own else expired


def claimable_fire_ids(*, session: Session, now: datetime, owner_id: str, reclaim_own: bool = False) -> list[int]:
    """Fires ready to submit: pending ones whose time has come, and claims whose lease expired (or, with
    `reclaim_own`, claims left by an earlier incarnation of this owner). Paused schedules are left alone."""
    stale = _stale_claim(now, owner_id, reclaim_own)
    return list(
        session.scalars(
            select(ScheduleFire.id)
            .join(Schedule, Schedule.id == ScheduleFire.schedule_id)
            .where(Schedule.paused.is_(False))
            .where(
                or_(
                    and_(ScheduleFire.status == "pending", ScheduleFire.not_before <= now),
                    and_(ScheduleFire.status == "submitting", stale),
                )
            )
            .order_by(ScheduleFire.scheduled_for, ScheduleFire.id)
        )
    )


def claim_fire(
    *,
    session: Session,
    fire_id: int,
    owner_id: str,
    now: datetime,
    lease: timedelta,
    reclaim_own: bool = False,
) -> Claim | None:
    """Take the lease on a fire and prepare its attempt's run row; None if there is nothing to submit.

    A pending fire starts a new attempt (a new queued run, `retry_of` the previous one). An expired claim (its
    holder died between claiming and recording the job id) is taken over with its run unchanged: unless the job
    has reported back already (its run has a job id or has finished), in which case the fire is simply marked
    submitted, the same run, attempt and submission id are submitted again, and the submitter must treat a
    duplicate submission id as success. None is also returned when another process claimed the fire first.
    """
    fire = session.get(ScheduleFire, fire_id, populate_existing=True)
    if fire is None:
        return None
    if fire.status == "pending":
        claimable = and_(ScheduleFire.status == "pending", ScheduleFire.not_before <= now)
    elif fire.status == "submitting":
        claimable = and_(
            ScheduleFire.status == "submitting",
            ScheduleFire.owner_id == fire.owner_id,
            _stale_claim(now, owner_id, reclaim_own),
        )
    else:
        return None
    previous_status, previous_owner = fire.status, fire.owner_id
    taken = session.execute(
        update(ScheduleFire)
        .where(ScheduleFire.id == fire_id, claimable)
        .values(status="submitting", owner_id=owner_id, lease_expires_at=now + lease, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    if taken.rowcount != 1:
        return None
    session.refresh(fire)
    schedule = session.get(Schedule, fire.schedule_id)
    if schedule is None:
        raise StoreError(f"schedule_fires {fire_id}: schedule {fire.schedule_id} vanished; it cascades, retry the tick")
    run = session.get(EvalRun, fire.run_id, populate_existing=True) if fire.run_id is not None else None
    reclaimed = previous_status == "submitting" and run is not None
    if reclaimed and run is not None and (run.ray_job_id is not None or run.status in TERMINAL_RUN_STATUSES):
        # The submission got through before its holder died: the job has reported back. Nothing to resubmit.
        fire.status, fire.lease_expires_at = "submitted", None
        session.flush()
        return None
    if not reclaimed:
        fire.attempts += 1
        run = create_run(
            session=session,
            suite=schedule.suite,
            categories=schedule.categories,
            model_uri=schedule.model_uri,
            triggered_by=f"schedule:{schedule.name}",
            schedule_id=schedule.id,
            scheduled_for=fire.scheduled_for,
            attempt=fire.attempts,
            retry_of=fire.run_id,
            config=schedule.config or None,
            now=now,
        )
        fire.run_id = run.id
    assert run is not None
    session.flush()
    return Claim(
        fire_id=fire.id,
        schedule=schedule,
        scheduled_for=fire.scheduled_for,
        run_id=run.id,
        attempt=run.attempt,
        reclaimed_from=previous_owner if reclaimed else None,
    )


def _holding(fire_id: int, owner_id: str) -> ColumnElement[bool]:
    return and_(ScheduleFire.id == fire_id, ScheduleFire.owner_id == owner_id, ScheduleFire.status == "submitting")


def record_submission(*, session: Session, fire_id: int, owner_id: str, job_id: str, now: datetime) -> bool:
    """Store the job id of a submitted attempt; False if this process no longer held the lease."""
    fire = session.get(ScheduleFire, fire_id)
    if fire is None:
        return False
    done = session.execute(
        update(ScheduleFire)
        .where(_holding(fire_id, owner_id))
        .values(status="submitted", lease_expires_at=None, last_error=None, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    if done.rowcount != 1:
        return False
    session.execute(
        update(EvalRun)
        .where(EvalRun.id == fire.run_id)
        .values(ray_job_id=job_id)
        .execution_options(synchronize_session=False)
    )
    return True


def record_submission_failure(
    *, session: Session, fire_id: int, owner_id: str, error: str, now: datetime, retry_delay: timedelta
) -> Settled | None:
    """Fail the attempt whose submission raised, and retry it later or give up; None if the lease was lost."""
    fire = session.get(ScheduleFire, fire_id)
    if fire is None:
        return None
    failed = session.execute(
        update(ScheduleFire)
        .where(_holding(fire_id, owner_id))
        .values(status="submitted", lease_expires_at=None, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    if failed.rowcount != 1:
        return None
    session.execute(
        update(EvalRun)
        .where(EvalRun.id == fire.run_id, EvalRun.status.not_in(TERMINAL_RUN_STATUSES))
        .values(status="failed", error=error, finished_at=now)
        .execution_options(synchronize_session=False)
    )
    return _settle_one(session, fire_id, now=now, retry_delay=retry_delay)


def _settle_one(session: Session, fire_id: int, *, now: datetime, retry_delay: timedelta) -> Settled | None:
    row = session.execute(
        select(ScheduleFire, EvalRun, Schedule)
        .join(Schedule, Schedule.id == ScheduleFire.schedule_id)
        .outerjoin(EvalRun, EvalRun.id == ScheduleFire.run_id)
        .where(ScheduleFire.id == fire_id, ScheduleFire.status == "submitted")
        .execution_options(populate_existing=True)
    ).first()
    if row is None:
        return None
    fire, run, schedule = row
    if run is None:
        status, error = "failed", "the run row of this fire was deleted"
    elif run.status in TERMINAL_RUN_STATUSES:
        status, error = run.status, run.error
    else:
        return None
    if status == "succeeded":
        outcome, values = "succeeded", {"status": "succeeded"}
    elif fire.attempts <= schedule.max_retries:
        outcome, values = "retry", {"status": "pending", "not_before": now + retry_delay, "owner_id": None}
    else:
        outcome, values = "failed", {"status": "failed"}
    if status == "failed":
        values["last_error"] = error
    moved = session.execute(
        update(ScheduleFire)
        .where(ScheduleFire.id == fire_id, ScheduleFire.status == "submitted")
        .values(updated_at=now, **values)
        .execution_options(synchronize_session=False)
    )
    if moved.rowcount != 1:
        return None
    return Settled(schedule.name, fire.scheduled_for, run.id if run is not None else -1, outcome, error)


def settle_fires(*, session: Session, now: datetime, retry_delay: timedelta) -> list[Settled]:
    """Close submitted fires whose run finished: succeeded, retried (attempts left) or failed for good."""
    finished = session.scalars(
        select(ScheduleFire.id)
        .outerjoin(EvalRun, EvalRun.id == ScheduleFire.run_id)
        .where(ScheduleFire.status == "submitted")
        .where(or_(EvalRun.id.is_(None), EvalRun.status.in_(TERMINAL_RUN_STATUSES)))
        .order_by(ScheduleFire.id)
    ).all()
    settled = [_settle_one(session, fire_id, now=now, retry_delay=retry_delay) for fire_id in finished]
    return [item for item in settled if item is not None]


def submitted_jobs(*, session: Session) -> list[SubmittedJob]:
    """Submitted fires whose run is still queued or running (to ask Ray whether their job is alive)."""
    rows = session.execute(
        select(ScheduleFire.id, EvalRun.id, EvalRun.ray_job_id)
        .join(EvalRun, EvalRun.id == ScheduleFire.run_id)
        .where(ScheduleFire.status == "submitted", EvalRun.status.not_in(TERMINAL_RUN_STATUSES))
        .order_by(ScheduleFire.id)
    )
    return [SubmittedJob(fire_id, run_id, job_id) for fire_id, run_id, job_id in rows]


def fail_lost_job(*, session: Session, run_id: int, error: str, now: datetime) -> bool:
    """Fail a run whose job ended without finishing it (crashed, stopped); False if it finished meanwhile."""
    failed = session.execute(
        update(EvalRun)
        .where(EvalRun.id == run_id, EvalRun.status.not_in(TERMINAL_RUN_STATUSES))
        .values(status="failed", error=error, finished_at=now)
        .execution_options(synchronize_session=False)
    )
    return failed.rowcount == 1


def next_wakeup(*, session: Session) -> datetime | None:
    """The soonest time anything becomes due: a schedule's next fire or a pending retry; None if nothing waits."""
    schedule_time = session.scalar(select(func.min(Schedule.next_fire_at)).where(Schedule.paused.is_(False)))
    retry_time = session.scalar(select(func.min(ScheduleFire.not_before)).where(ScheduleFire.status == "pending"))
    candidates = [t for t in (schedule_time, retry_time) if t is not None]
    return min(candidates) if candidates else None
