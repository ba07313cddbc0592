"""The scheduler service's loop: plan due cron times, claim each fire once across processes, submit, retry."""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import Engine

from mor.scheduler.fire import FireFn, JobStatusFn, ScheduledFire
from mor.scheduler.planning import plan_fires
from mor.store import (
    Settled,
    claim_fire,
    claimable_fire_ids,
    due_schedules,
    error_text,
    fail_lost_job,
    next_wakeup,
    plan_schedule,
    record_submission,
    record_submission_failure,
    session_scope,
    settle_fires,
    submitted_jobs,
    utcnow,
)

__all__ = ["Fired", "Scheduler", "Skipped", "TickReport", "default_owner_id"]

_log = logging.getLogger(__name__)
_TERMINAL_JOB_STATES = frozenset({"succeeded", "failed", "stopped"})


def default_owner_id() -> str:
    """A scheduler id unique to this process: host, pid and a random suffix."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


@dataclass(frozen=True)
class Fired:
    """One submission attempt made by this scheduler during a tick."""

    schedule_name: str
    scheduled_for: datetime
    run_id: int
    attempt: int
    job_id: str | None  # None when the submission raised
    error: str | None = None


@dataclass(frozen=True)
class Skipped:
    """Due cron times a schedule dropped by its catch-up policy."""

    schedule_name: str
    first: datetime
    last: datetime


@dataclass
class TickReport:
    """What one `tick` did (for logs and tests)."""

    planned: list[tuple[str, datetime]] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    submitted: list[Fired] = field(default_factory=list)
    submit_errors: list[Fired] = field(default_factory=list)
    settled: list[Settled] = field(default_factory=list)
    lost_jobs: list[int] = field(default_factory=list)  # run ids failed because their job died unreported


class Scheduler:
    """Fires due schedules as jobs, once each, across any number of scheduler processes on one database.

    `fire(scheduled, scheduled_for)` submits one attempt and returns its job id; it must be idempotent per
    `scheduled.submission_id` (see `ScheduledFire`). `clock` returns aware UTC datetimes. `owner_id` must be
    unique among live schedulers; giving a restarted scheduler its previous id lets it take back the claims it
    left unfinished at once instead of after `lease`. `job_status`, if given, lets the scheduler fail runs whose
    job ended without finishing them (a crashed job), so they are retried.
    """

    def __init__(
        self,
        engine: Engine,
        fire: FireFn,
        *,
        clock: Callable[[], datetime] = utcnow,
        owner_id: str | None = None,
        lease: timedelta = timedelta(minutes=5),
        retry_delay: timedelta = timedelta(minutes=1),
        misfire_grace: timedelta = timedelta(minutes=1),
        max_backlog: int = 1000,
        job_status: JobStatusFn | None = None,
    ) -> None:
        self.engine = engine
        self.owner_id = owner_id or default_owner_id()
        self._fire = fire
        self._clock = clock
        self._lease = lease
        self._retry_delay = retry_delay
        self._misfire_grace = misfire_grace
        self._max_backlog = max_backlog
        self._job_status = job_status
        self._started = False  # until the first tick completes, this owner's own claims count as stale

    def tick(self) -> TickReport:
        """One pass: close finished runs (retrying failures), plan due cron times, submit what is claimable."""
        report = TickReport()
        if self._job_status is not None:
            self._check_jobs(report)
        with session_scope(self.engine) as session:
            report.settled = settle_fires(session=session, now=self._clock(), retry_delay=self._retry_delay)
        for settled in report.settled:
            _log.info(
                "schedule %s @ %s: run %s %s",
                settled.schedule_name,
                settled.scheduled_for,
                settled.run_id,
                settled.outcome,
            )
        self._plan(report)
        self._submit(report)
        self._started = True
        return report

    def run_forever(self, poll_seconds: float = 10.0, stop_event: threading.Event | None = None) -> None:
        """Tick until `stop_event` is set, sleeping at most `poll_seconds` (less when a fire is due sooner).

        A failing tick (database unreachable, ...) is logged and retried on the next poll.
        """
        stop = stop_event or threading.Event()
        while not stop.is_set():
            try:
                self.tick()
            except Exception:
                _log.exception("scheduler %s: tick failed; next try in %.1f s", self.owner_id, poll_seconds)
                stop.wait(poll_seconds)
                continue
            stop.wait(self._sleep_seconds(poll_seconds))

    def _sleep_seconds(self, poll_seconds: float) -> float:
        try:
            with session_scope(self.engine) as session:
                wakeup = next_wakeup(session=session)
        except Exception:
            return poll_seconds
        if wakeup is None:
            return poll_seconds
        return min(poll_seconds, max(0.0, (wakeup - self._clock()).total_seconds()))

    def _check_jobs(self, report: TickReport) -> None:
        assert self._job_status is not None
        with session_scope(self.engine) as session:
            jobs = submitted_jobs(session=session)
        for job in jobs:
            if job.ray_job_id is None:
                continue
            try:
                state = self._job_status(job.ray_job_id)
            except Exception:
                _log.exception("job status of %s unavailable", job.ray_job_id)
                continue
            if state is None or state.lower() not in _TERMINAL_JOB_STATES:
                continue
            error = f"job {job.ray_job_id} ended {state.upper()} without finishing run {job.run_id}"
            with session_scope(self.engine) as session:
                if fail_lost_job(session=session, run_id=job.run_id, error=error, now=self._clock()):
                    report.lost_jobs.append(job.run_id)
                    _log.warning(error)

    def _plan(self, report: TickReport) -> None:
        now = self._clock()
        with session_scope(self.engine) as session:
            due = due_schedules(session=session, now=now)
        for schedule in due:
            assert schedule.next_fire_at is not None
            plan = plan_fires(
                cron=schedule.cron,
                tz=schedule.timezone,
                next_fire_at=schedule.next_fire_at,
                now=now,
                catch_up=schedule.catch_up,
                misfire_grace=self._misfire_grace,
                max_backlog=self._max_backlog,
            )
            with session_scope(self.engine) as session:
                created = plan_schedule(
                    session=session,
                    schedule_id=schedule.id,
                    seen_next_fire_at=schedule.next_fire_at,
                    times=plan.times,
                    next_fire_at=plan.next_fire_at,
                    now=now,
                )
            if created is None:
                continue  # another scheduler planned it first
            report.planned.extend((schedule.name, t) for t in created)
            if plan.skipped_from is not None and plan.skipped_until is not None:
                report.skipped.append(Skipped(schedule.name, plan.skipped_from, plan.skipped_until))
                _log.warning(
                    "schedule %s (catch_up=%s): skipped fires due %s .. %s",
                    schedule.name,
                    schedule.catch_up,
                    plan.skipped_from,
                    plan.skipped_until,
                )

    def _submit(self, report: TickReport) -> None:
        reclaim_own = not self._started
        with session_scope(self.engine) as session:
            fire_ids = claimable_fire_ids(
                session=session, now=self._clock(), owner_id=self.owner_id, reclaim_own=reclaim_own
            )
        for fire_id in fire_ids:
            with session_scope(self.engine) as session:
                claim = claim_fire(
                    session=session,
                    fire_id=fire_id,
                    owner_id=self.owner_id,
                    now=self._clock(),
                    lease=self._lease,
                    reclaim_own=reclaim_own,
                )
            if claim is None:
                continue  # another scheduler claimed it first
            if claim.reclaimed_from is not None:
                _log.warning("fire %s: taking over the unfinished submission of %s", fire_id, claim.reclaimed_from)
            scheduled = ScheduledFire.from_claim(claim)
            try:
                job_id = self._fire(scheduled, claim.scheduled_for)
                if not isinstance(job_id, str) or not job_id:
                    raise TypeError(f"fire returned {job_id!r}; it must return the submitted job's id (a string)")
            except Exception as exc:
                error = error_text(exc)
                with session_scope(self.engine) as session:
                    settled = record_submission_failure(
                        session=session,
                        fire_id=fire_id,
                        owner_id=self.owner_id,
                        error=error,
                        now=self._clock(),
                        retry_delay=self._retry_delay,
                    )
                report.submit_errors.append(
                    Fired(scheduled.name, claim.scheduled_for, claim.run_id, claim.attempt, None, error)
                )
                if settled is not None:
                    report.settled.append(settled)
                _log.error(
                    "schedule %s @ %s attempt %d: submission failed: %s",
                    scheduled.name,
                    claim.scheduled_for,
                    claim.attempt,
                    error.splitlines()[0],
                )
                continue
            with session_scope(self.engine) as session:
                recorded = record_submission(
                    session=session, fire_id=fire_id, owner_id=self.owner_id, job_id=job_id, now=self._clock()
                )
            if recorded:
                report.submitted.append(Fired(scheduled.name, claim.scheduled_for, claim.run_id, claim.attempt, job_id))
            else:
                _log.warning(
                    "fire %s: lease lost before job %s was recorded; its new holder resubmits the same submission id",
                    fire_id,
                    job_id,
                )
