"""Queries on schedules: create, look up, list, pause/resume, remove (session as a keyword argument)."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from mor.store.base import utcnow
from mor.store.cron import next_fire_time, validate_cron, validate_timezone
from mor.store.errors import AlreadyExistsError, InvalidValueError, NotFoundError
from mor.store.models import CATCH_UP_POLICIES, Schedule

__all__ = ["create_schedule", "get_schedule", "list_schedules", "remove_schedule", "set_paused"]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def create_schedule(
    *,
    session: Session,
    name: str,
    cron: str,
    suite: str,
    model_uri: str,
    categories: Sequence[str] = (),
    timezone: str = "UTC",
    catch_up: str = "run_once",
    max_retries: int = 0,
    paused: bool = False,
    config: Mapping[str, Any] | None = None,
    created_by: str | None = None,
    now: datetime | None = None,
) -> Schedule:
    """Validate and store a schedule; its first fire is the first cron time after `now`.

    `model_uri` is best an alias URI (models:/mor-agent@champion) so every fire evaluates the current champion.
    `catch_up` says what happens to fires missed while no scheduler ran: 'skip' them, 'run_once' for all of
    them, or 'run_all' of them. A failed run is retried up to `max_retries` times.
    """
    if not _NAME.match(name):
        raise InvalidValueError(
            "name",
            name,
            "must be 1-128 letters, digits, '.', '_' or '-', starting with a letter or digit",
            "e.g. 'bfcl-nightly'",
        )
    expression = validate_cron(cron)
    validate_timezone(timezone)
    if catch_up not in CATCH_UP_POLICIES:
        raise InvalidValueError(
            "catch_up",
            catch_up,
            f"must be one of {', '.join(CATCH_UP_POLICIES)}",
            "'run_once' runs one evaluation for everything missed while the scheduler was down",
        )
    if max_retries < 0:
        raise InvalidValueError("max_retries", max_retries, "must be >= 0", "0 means no retry")
    if not suite:
        raise InvalidValueError("suite", suite, "must not be empty", "e.g. 'bfcl'")
    if not model_uri:
        raise InvalidValueError("model_uri", model_uri, "must not be empty", "e.g. 'models:/mor-agent@champion'")
    if session.scalars(select(Schedule.id).where(Schedule.name == name)).first() is not None:
        raise AlreadyExistsError("schedule", name, "choose another name or remove the old one first")
    at = now or utcnow()
    schedule = Schedule(
        name=name,
        cron=expression,
        suite=suite,
        categories=list(categories),
        model_uri=model_uri,
        timezone=timezone,
        catch_up=catch_up,
        max_retries=max_retries,
        paused=paused,
        next_fire_at=next_fire_time(expression, timezone, at),
        config=dict(config or {}),
        created_by=created_by,
        created_at=at,
        updated_at=at,
    )
    session.add(schedule)
    session.flush()
    return schedule


def get_schedule(*, session: Session, name: str) -> Schedule:
    """The schedule called `name`, or `NotFoundError`."""
    schedule = session.scalars(select(Schedule).where(Schedule.name == name)).first()
    if schedule is None:
        raise NotFoundError("schedule", name, "list schedules with `mor eval schedule list`")
    return schedule


def list_schedules(*, session: Session, include_paused: bool = True) -> list[Schedule]:
    """All schedules by name."""
    query = select(Schedule).order_by(Schedule.name)
    if not include_paused:
        query = query.where(Schedule.paused.is_(False))
    return list(session.scalars(query))


def set_paused(*, session: Session, name: str, paused: bool, now: datetime | None = None) -> Schedule:
    """Pause or resume a schedule. Resuming restarts from the next cron time after `now`: fires that fell in
    the pause are not caught up (a pause means "do not run")."""
    schedule = get_schedule(session=session, name=name)
    if schedule.paused == paused:
        return schedule
    at = now or utcnow()
    schedule.paused = paused
    schedule.updated_at = at
    if not paused:
        schedule.next_fire_at = next_fire_time(schedule.cron, schedule.timezone, at)
    session.flush()
    return schedule


def remove_schedule(*, session: Session, name: str) -> None:
    """Delete a schedule and its pending fires; its runs stay, with schedule_id set to NULL."""
    session.delete(get_schedule(session=session, name=name))
    session.flush()
