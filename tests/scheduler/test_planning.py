"""Catch-up policies as a pure function."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from mor.scheduler import plan_fires

UTC = UTC
HOURLY = "0 * * * *"
GRACE = timedelta(minutes=1)


def _at(hour: int, minute: int = 0, second: int = 0) -> datetime:
    return datetime(2025, 6, 1, hour, minute, second, tzinfo=UTC)


@pytest.mark.parametrize("policy", ["skip", "run_once", "run_all"])
def test_on_time_fire_is_the_same_for_every_policy(policy: str) -> None:
    plan = plan_fires(
        cron=HOURLY, tz="UTC", next_fire_at=_at(2), now=_at(2, 0, 5), catch_up=policy, misfire_grace=GRACE
    )
    assert plan.times == [_at(2)]
    assert plan.next_fire_at == _at(3)
    assert plan.skipped_from is None and plan.skipped_until is None


def test_run_all_fires_every_missed_time_in_order() -> None:
    plan = plan_fires(
        cron=HOURLY, tz="UTC", next_fire_at=_at(2), now=_at(5, 30), catch_up="run_all", misfire_grace=GRACE
    )
    assert plan.times == [_at(2), _at(3), _at(4), _at(5)]
    assert plan.next_fire_at == _at(6)


def test_run_all_backlog_is_spread_over_calls() -> None:
    plan = plan_fires(
        cron=HOURLY,
        tz="UTC",
        next_fire_at=_at(2),
        now=_at(5, 30),
        catch_up="run_all",
        misfire_grace=GRACE,
        max_backlog=3,
    )
    assert plan.times == [_at(2), _at(3), _at(4)]
    assert plan.next_fire_at == _at(5)  # still due: the next call fires it


def test_run_once_fires_the_latest_and_reports_the_rest_skipped() -> None:
    plan = plan_fires(
        cron=HOURLY, tz="UTC", next_fire_at=_at(2), now=_at(5, 30), catch_up="run_once", misfire_grace=GRACE
    )
    assert plan.times == [_at(5)]
    assert (plan.skipped_from, plan.skipped_until) == (_at(2), _at(4))
    assert plan.next_fire_at == _at(6)


def test_skip_drops_missed_times_and_keeps_those_within_grace() -> None:
    late = plan_fires(
        cron=HOURLY, tz="UTC", next_fire_at=_at(2), now=_at(5, 0, 30), catch_up="skip", misfire_grace=GRACE
    )
    assert late.times == [_at(5)]
    assert (late.skipped_from, late.skipped_until) == (_at(2), _at(4))
    missed = plan_fires(
        cron=HOURLY, tz="UTC", next_fire_at=_at(2), now=_at(5, 30), catch_up="skip", misfire_grace=GRACE
    )
    assert missed.times == []
    assert (missed.skipped_from, missed.skipped_until) == (_at(2), _at(5))
    assert missed.next_fire_at == _at(6)


def test_skip_with_a_seconds_cron_keeps_every_time_in_the_window() -> None:
    plan = plan_fires(
        cron="* * * * * */10",
        tz="UTC",
        next_fire_at=_at(2),
        now=_at(2, 1, 5),
        catch_up="skip",
        misfire_grace=timedelta(seconds=30),
    )
    assert plan.times == [_at(2, 0, 40), _at(2, 0, 50), _at(2, 1, 0)]
    assert (plan.skipped_from, plan.skipped_until) == (_at(2), _at(2, 0, 30))


def test_unknown_policy_is_refused() -> None:
    with pytest.raises(ValueError, match="catch_up: got 'sometimes'"):
        plan_fires(cron=HOURLY, tz="UTC", next_fire_at=_at(2), now=_at(2), catch_up="sometimes", misfire_grace=GRACE)
