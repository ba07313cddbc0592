"""Cron arithmetic in time zones, and validation messages."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import islice

import pytest

from mor.store import (
    InvalidValueError,
    fire_times,
    latest_fire_time,
    next_fire_time,
    previous_fire_time,
    validate_cron,
    validate_timezone,
)

UTC = UTC


def test_nightly_in_utc_and_in_a_zone() -> None:
    after = datetime(2025, 6, 1, 0, 0, tzinfo=UTC)
    assert next_fire_time("0 2 * * *", "UTC", after) == datetime(2025, 6, 1, 2, 0, tzinfo=UTC)
    # 02:00 in Paris in June (UTC+2) is 00:00 UTC; "after" is exclusive, so the next one is on the 2nd.
    assert next_fire_time("0 2 * * *", "Europe/Paris", after) == datetime(2025, 6, 2, 0, 0, tzinfo=UTC)


def test_daylight_saving_gap_fires_once_after_it() -> None:
    # 2025-03-30: Paris clocks jump from 02:00 to 03:00; 02:30 does not exist that night.
    times = list(islice(fire_times("30 2 * * *", "Europe/Paris", datetime(2025, 3, 29, 12, tzinfo=UTC)), 3))
    assert times == [
        datetime(2025, 3, 30, 1, 0, tzinfo=UTC),  # 03:00 CEST, right after the gap
        datetime(2025, 3, 31, 0, 30, tzinfo=UTC),
        datetime(2025, 4, 1, 0, 30, tzinfo=UTC),
    ]


def test_seconds_field_and_previous_and_latest() -> None:
    at = datetime(2025, 1, 1, 0, 0, 7, 500000, tzinfo=UTC)
    assert next_fire_time("* * * * * */5", "UTC", at) == datetime(2025, 1, 1, 0, 0, 10, tzinfo=UTC)
    assert previous_fire_time("* * * * * */5", "UTC", at) == datetime(2025, 1, 1, 0, 0, 5, tzinfo=UTC)
    on_the_dot = datetime(2025, 1, 1, 2, 0, tzinfo=UTC)
    assert latest_fire_time("0 2 * * *", "UTC", on_the_dot) == on_the_dot
    assert latest_fire_time("0 2 * * *", "UTC", on_the_dot - timedelta(microseconds=1)) == datetime(
        2024, 12, 31, 2, 0, tzinfo=UTC
    )


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("61 * * * *", r"cron: got '61 \* \* \* \*', is not a valid cron expression"),
        ("* * *", r"cron: got '\* \* \*', has 3 fields, needs 5 or 6; use 5 fields"),
        ("", "has 0 fields"),
    ],
)
def test_bad_cron_is_named_with_a_fix(expression: str, message: str) -> None:
    with pytest.raises(InvalidValueError, match=message) as caught:
        validate_cron(expression)
    assert "e.g. '0 2 * * *'" in str(caught.value)


def test_cron_whitespace_is_normalised_and_aliases_pass() -> None:
    assert validate_cron("  0   2 * *  * ") == "0 2 * * *"
    assert validate_cron("@daily") == "@daily"


def test_bad_timezone_and_naive_times() -> None:
    with pytest.raises(InvalidValueError, match="timezone: got 'Mars/Olympus', is not an IANA time zone"):
        validate_timezone("Mars/Olympus")
    with pytest.raises(InvalidValueError, match="after: got .* must carry a time zone"):
        next_fire_time("0 2 * * *", "UTC", datetime(2025, 1, 1))
