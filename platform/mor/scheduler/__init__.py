"""The evaluation scheduler: cron schedules fired as jobs, exactly once across scheduler processes.

`Scheduler(engine, fire, clock=..., owner_id=...)` with `tick()` and `run_forever(poll_seconds, stop_event)`.
How it stays exactly-once and restart-safe is described in `mor/scheduler/README.md`.
"""

from mor.scheduler.fire import FireFn, JobStatusFn, ScheduledFire
from mor.scheduler.loop import Fired, Scheduler, Skipped, TickReport, default_owner_id
from mor.scheduler.planning import FirePlan, plan_fires

__all__ = [
    "FireFn",
    "FirePlan",
    "Fired",
    "JobStatusFn",
    "ScheduledFire",
    "Scheduler",
    "Skipped",
    "TickReport",
    "default_owner_id",
    "plan_fires",
]
