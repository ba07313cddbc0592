"""What the scheduler hands to the `fire` callable, and the callables' types."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from mor.store import Claim

__all__ = ["FireFn", "JobStatusFn", "ScheduledFire"]


@dataclass(frozen=True)
class ScheduledFire:
    """One attempt of one fire: the schedule's fields (same names as the `Schedule` row) plus its run row.

    The scheduler creates the queued run row (`run_id`) before calling `fire`, so the submitted job knows which
    row to report to. `submission_id` is stable for this attempt: use it as the Ray job's submission id, and
    when Ray answers that it already exists, return it as the job id — after a crash between submitting and
    recording, the scheduler submits the same attempt again, and this is what keeps it from running twice.
    """

    id: int
    name: str
    cron: str
    suite: str
    categories: tuple[str, ...]
    model_uri: str
    timezone: str
    catch_up: str
    max_retries: int
    scheduled_for: datetime
    run_id: int
    attempt: int
    config: Mapping[str, Any] = field(default_factory=dict)

    @property
    def submission_id(self) -> str:
        """A job id unique to this attempt, e.g. `mor-bfcl-nightly-20250601T020000Z-run42`."""
        return f"mor-{self.name}-{self.scheduled_for:%Y%m%dT%H%M%SZ}-run{self.run_id}"

    @classmethod
    def from_claim(cls, claim: Claim) -> ScheduledFire:
        """Snapshot a claimed fire (the schedule row is copied, not kept)."""
        schedule = claim.schedule
        return cls(
            id=schedule.id,
            name=schedule.name,
            cron=schedule.cron,
            suite=schedule.suite,
            categories=tuple(schedule.categories),
            model_uri=schedule.model_uri,
            timezone=schedule.timezone,
            catch_up=schedule.catch_up,
            max_retries=schedule.max_retries,
            scheduled_for=claim.scheduled_for,
            run_id=claim.run_id,
            attempt=claim.attempt,
            config=dict(schedule.config or {}),
        )


# Submits the evaluation (a Ray job) and returns its job id; raising marks the attempt failed.
FireFn = Callable[[ScheduledFire, datetime], str]
# Given a job id, its state ("pending", "running", "succeeded", "failed", "stopped", any case) or None if unknown.
JobStatusFn = Callable[[str], str | None]
