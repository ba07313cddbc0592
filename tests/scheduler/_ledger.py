"""A real stand-in for job submission used by the scheduler tests: jobs are rows in the test database.

Like Ray's job submission it is idempotent per submission id (a second submission of the same id returns the
existing job), and every call is logged, so tests can tell "called twice" from "ran twice".
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, datetime

from sqlalchemy import Column, DateTime, Engine, Integer, MetaData, String, Table, func, insert, select

from mor.scheduler import ScheduledFire

_metadata = MetaData()

JOBS = Table(
    "test_jobs",
    _metadata,
    Column("submission_id", String(255), primary_key=True),
    Column("schedule_name", String(128), nullable=False),
    Column("scheduled_for", String(40), nullable=False),
    Column("run_id", Integer, nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("owner", String(128), nullable=False),
    Column("submitted_at", DateTime(timezone=True), nullable=False),
)
CALLS = Table(
    "test_fire_calls",
    _metadata,
    Column("id", Integer, primary_key=True),
    Column("submission_id", String(255), nullable=False),
    Column("owner", String(128), nullable=False),
)


def create_tables(engine: Engine) -> None:
    """Create the ledger tables (idempotent)."""
    _metadata.create_all(engine)


class JobLedger:
    """`fire` for tests: submits a "job" by inserting a row; returns the attempt's submission id.

    `fail_attempts`: attempts whose submission raises (like a cluster refusing the job).
    `crash`: called after the job row is committed (or before, with `crash_before=True`), to simulate the
    scheduler process dying between submitting and recording. The tables must exist (`create_tables`).
    """

    def __init__(
        self,
        engine: Engine,
        owner: str = "test",
        *,
        fail_attempts: Iterable[int] = (),
        crash: Callable[[], None] | None = None,
        crash_before: bool = False,
    ) -> None:
        self.engine = engine
        self.owner = owner
        self.fail_attempts = set(fail_attempts)
        self.crash = crash
        self.crash_before = crash_before

    def __call__(self, scheduled: ScheduledFire, scheduled_for: datetime) -> str:
        assert scheduled.scheduled_for == scheduled_for
        with self.engine.begin() as connection:
            connection.execute(insert(CALLS).values(submission_id=scheduled.submission_id, owner=self.owner))
        if self.crash is not None and self.crash_before:
            self.crash()
        if scheduled.attempt in self.fail_attempts:
            raise RuntimeError(f"cluster refused the job (attempt {scheduled.attempt})")
        with self.engine.begin() as connection:
            exists = connection.execute(
                select(JOBS.c.submission_id).where(JOBS.c.submission_id == scheduled.submission_id)
            ).first()
            if exists is None:
                connection.execute(
                    insert(JOBS).values(
                        submission_id=scheduled.submission_id,
                        schedule_name=scheduled.name,
                        scheduled_for=scheduled_for.isoformat(),
                        run_id=scheduled.run_id,
                        attempt=scheduled.attempt,
                        owner=self.owner,
                        submitted_at=datetime.now(UTC),
                    )
                )
        if self.crash is not None and not self.crash_before:
            self.crash()
        return scheduled.submission_id


def jobs(engine: Engine) -> list[dict]:
    """Every submitted job, oldest fire first."""
    with engine.connect() as connection:
        rows = connection.execute(select(JOBS).order_by(JOBS.c.schedule_name, JOBS.c.scheduled_for, JOBS.c.attempt))
        return [dict(row._mapping) for row in rows]


def call_count(engine: Engine) -> int:
    """How many times `fire` was called, by any process."""
    with engine.connect() as connection:
        return int(connection.execute(select(func.count()).select_from(CALLS)).scalar_one())
