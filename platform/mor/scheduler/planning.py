"""Which cron times to fire now, given the catch-up policy: a pure function, no database."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from mor.store import fire_times, latest_fire_time, next_fire_time

__all__ = ["FirePlan", "plan_fires"]

_EPSILON = timedelta(microseconds=1)


@dataclass(frozen=True)
class FirePlan:
    """The cron times to fire now, where the schedule goes next, and the span of due times not fired."""

    times: list[datetime]
    next_fire_at: datetime
    skipped_from: datetime | None = None  # first due time dropped by the catch-up policy
    skipped_until: datetime | None = None  # last due time dropped


def _times_from(cron: str, tz: str, first: datetime, now: datetime, limit: int) -> tuple[list[datetime], bool]:
    """Cron times from `first` (a cron time) up to `now`, at most `limit`; and whether more were due."""
    times: list[datetime] = []
    candidate = first
    while candidate <= now:
        if len(times) == limit:
            return times, True
        times.append(candidate)
        candidate = next_fire_time(cron, tz, candidate)
    return times, False


def plan_fires(
    *,
    cron: str,
    tz: str,
    next_fire_at: datetime,
    now: datetime,
    catch_up: str,
    misfire_grace: timedelta,
    max_backlog: int = 1000,
) -> FirePlan:
    """Decide what a due schedule fires at `now`; `next_fire_at` (<= `now`) is its first unplanned cron time.

    A due time older than `misfire_grace` counts as missed (no scheduler was running then). Policies:
    - skip: fire the due times within the grace window; drop the missed ones;
    - run_once: fire one run, for the latest due time, standing for everything missed;
    - run_all: fire every due time in order, at most `max_backlog` per call (the rest on the next calls).
    """
    after_now = next_fire_time(cron, tz, now)
    if catch_up == "run_all":
        times, more = _times_from(cron, tz, next_fire_at, now, max_backlog)
        return FirePlan(times=times, next_fire_at=next_fire_time(cron, tz, times[-1]) if more else after_now)
    if catch_up == "run_once":
        latest = max(latest_fire_time(cron, tz, now), next_fire_at)
        return _with_skipped(FirePlan(times=[latest], next_fire_at=after_now), cron, tz, next_fire_at, latest)
    if catch_up == "skip":
        window_start = now - misfire_grace
        first = next_fire_at if next_fire_at >= window_start else next(fire_times(cron, tz, window_start - _EPSILON))
        times, _ = _times_from(cron, tz, first, now, max_backlog)
        # Everything due before the window was missed; if nothing is left in the window, all due times were.
        until = first if times else next_fire_time(cron, tz, now)
        return _with_skipped(FirePlan(times=times, next_fire_at=after_now), cron, tz, next_fire_at, until)
    raise ValueError(f"catch_up: got {catch_up!r}, must be one of skip, run_once, run_all")


def _with_skipped(plan: FirePlan, cron: str, tz: str, first_due: datetime, fired_from: datetime) -> FirePlan:
    """Record the due times in [first_due, fired_from) as skipped."""
    if first_due >= fired_from:
        return plan
    last_skipped = latest_fire_time(cron, tz, fired_from - _EPSILON)
    return FirePlan(plan.times, plan.next_fire_at, skipped_from=first_due, skipped_until=last_skipped)
