"""Cron arithmetic in a schedule's time zone (croniter), with validation that says what to write instead."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterError, croniter

from mor.store.errors import InvalidValueError

__all__ = [
    "fire_times",
    "latest_fire_time",
    "next_fire_time",
    "previous_fire_time",
    "validate_cron",
    "validate_timezone",
]

_CRON_FIX = (
    "use 5 fields 'minute hour day-of-month month day-of-week' (e.g. '0 2 * * *' for 02:00 nightly), "
    "an optional 6th field for seconds, or an alias such as '@daily'"
)


def validate_cron(expression: str, field: str = "cron") -> str:
    """Return the expression stripped, or raise `InvalidValueError` naming what is wrong."""
    cleaned = " ".join(expression.split())
    fields = cleaned.split(" ")
    if not cleaned or (not cleaned.startswith("@") and len(fields) not in (5, 6)):
        count = len(fields) if cleaned else 0
        raise InvalidValueError(field, expression, f"has {count} fields, needs 5 or 6", _CRON_FIX)
    try:
        croniter(cleaned, datetime(2000, 1, 1, tzinfo=UTC))
    except (CroniterError, ValueError, KeyError) as exc:
        raise InvalidValueError(field, expression, f"is not a valid cron expression ({exc})", _CRON_FIX) from exc
    return cleaned


def validate_timezone(name: str, field: str = "timezone") -> ZoneInfo:
    """The IANA time zone called `name`, or `InvalidValueError`."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise InvalidValueError(
            field, name, "is not an IANA time zone", "e.g. 'UTC' or 'Europe/Paris' (see zoneinfo.available_timezones())"
        ) from exc


def _aware(value: datetime, field: str) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidValueError(field, value, "must carry a time zone", "pass e.g. datetime.now(timezone.utc)")
    return value


def fire_times(expression: str, tz: str, after: datetime) -> Iterator[datetime]:
    """The cron times strictly after `after`, in order, as aware UTC datetimes (evaluated in zone `tz`)."""
    zone = validate_timezone(tz)
    start = _aware(after, "after").astimezone(zone)
    schedule = croniter(validate_cron(expression), start)
    while True:
        yield schedule.get_next(datetime).astimezone(UTC)


def next_fire_time(expression: str, tz: str, after: datetime) -> datetime:
    """The first cron time strictly after `after` (aware UTC)."""
    return next(fire_times(expression, tz, after))


def previous_fire_time(expression: str, tz: str, before: datetime) -> datetime:
    """The last cron time strictly before `before` (aware UTC)."""
    zone = validate_timezone(tz)
    start = _aware(before, "before").astimezone(zone)
    return croniter(validate_cron(expression), start).get_prev(datetime).astimezone(UTC)


def latest_fire_time(expression: str, tz: str, at: datetime) -> datetime:
    """The last cron time at or before `at` (aware UTC)."""
    candidate = previous_fire_time(expression, tz, at)
    following = next_fire_time(expression, tz, candidate)
    return following if following <= at else candidate
