"""Schedules: validation, listing, pause/resume, removal."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from mor.store import (
    AlreadyExistsError,
    InvalidValueError,
    NotFoundError,
    Schedule,
    ScheduleFire,
    create_run,
    create_schedule,
    get_run,
    get_schedule,
    list_schedules,
    plan_schedule,
    remove_schedule,
    session_scope,
    set_paused,
)

UTC = UTC
NOW = datetime(2025, 6, 1, 12, 34, 56, tzinfo=UTC)


def _nightly(session: Session, name: str = "bfcl-nightly", **overrides: Any) -> Schedule:
    arguments = dict(
        session=session,
        name=name,
        cron="0 2 * * *",
        suite="bfcl",
        categories=["simple_python", "multiple"],
        model_uri="models:/mor-agent@champion",
        now=NOW,
    )
    arguments.update(overrides)
    return create_schedule(**arguments)


def test_create_and_read_back(engine: Engine) -> None:
    with session_scope(engine) as session:
        created = _nightly(
            session,
            timezone="Europe/Paris",
            catch_up="run_all",
            max_retries=2,
            config={"data_dir": "/data"},
            created_by="ada",
        )
    with session_scope(engine) as session:
        loaded = get_schedule(session=session, name="bfcl-nightly")
    assert loaded.id == created.id
    assert (loaded.cron, loaded.suite, loaded.categories) == ("0 2 * * *", "bfcl", ["simple_python", "multiple"])
    assert (loaded.timezone, loaded.catch_up, loaded.max_retries, loaded.paused) == (
        "Europe/Paris",
        "run_all",
        2,
        False,
    )
    assert loaded.config == {"data_dir": "/data"}
    # 02:00 Paris (UTC+2 in June) on the next day.
    assert loaded.next_fire_at == datetime(2025, 6, 2, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"name": "has space"}, "name: got 'has space', must be 1-128 letters"),
        ({"cron": "0 25 * * *"}, "cron: got '0 25 \\* \\* \\*', is not a valid cron expression"),
        ({"timezone": "Paris"}, "timezone: got 'Paris', is not an IANA time zone"),
        ({"catch_up": "later"}, "catch_up: got 'later', must be one of skip, run_once, run_all"),
        ({"max_retries": -1}, "max_retries: got -1, must be >= 0"),
        ({"model_uri": ""}, "model_uri: got '', must not be empty; e.g. 'models:/mor-agent@champion'"),
    ],
)
def test_invalid_schedules_are_named(engine: Engine, overrides: dict, message: str) -> None:
    with session_scope(engine) as session:
        with pytest.raises(InvalidValueError, match=message):
            _nightly(session, **overrides)


def test_names_are_unique(engine: Engine) -> None:
    with session_scope(engine) as session:
        _nightly(session)
    with session_scope(engine) as session:
        with pytest.raises(AlreadyExistsError, match="schedule 'bfcl-nightly' already exists; choose another name"):
            _nightly(session)


def test_list_and_pause_resume(engine: Engine) -> None:
    with session_scope(engine) as session:
        _nightly(session, name="b-second")
        _nightly(session, name="a-first")
    later = datetime(2025, 6, 5, 3, 0, tzinfo=UTC)
    with session_scope(engine) as session:
        paused = set_paused(session=session, name="a-first", paused=True, now=later)
        assert paused.paused
    with session_scope(engine) as session:
        assert [s.name for s in list_schedules(session=session)] == ["a-first", "b-second"]
        assert [s.name for s in list_schedules(session=session, include_paused=False)] == ["b-second"]
        resumed = set_paused(session=session, name="a-first", paused=False, now=later)
    # Resuming does not catch up the pause: the next fire is the first cron time after the resume.
    assert not resumed.paused
    assert resumed.next_fire_at == datetime(2025, 6, 6, 2, 0, tzinfo=UTC)
    with session_scope(engine) as session:
        with pytest.raises(NotFoundError, match="schedule 'nope' not found; list schedules with"):
            set_paused(session=session, name="nope", paused=True)


def test_remove_keeps_runs_and_drops_fires(engine: Engine) -> None:
    fire_time = datetime(2025, 6, 2, 2, 0, tzinfo=UTC)
    with session_scope(engine) as session:
        schedule = _nightly(session)
        seen = schedule.next_fire_at
        assert plan_schedule(
            session=session,
            schedule_id=schedule.id,
            seen_next_fire_at=seen,
            times=[fire_time],
            next_fire_at=datetime(2025, 6, 3, 2, 0, tzinfo=UTC),
            now=NOW,
        ) == [fire_time]
        run = create_run(
            session=session,
            suite="bfcl",
            categories=[],
            model_uri=schedule.model_uri,
            triggered_by="schedule:bfcl-nightly",
            schedule_id=schedule.id,
            scheduled_for=fire_time,
        )
    with session_scope(engine) as session:
        remove_schedule(session=session, name="bfcl-nightly")
    with session_scope(engine) as session:
        assert list_schedules(session=session) == []
        assert session.scalar(select(func.count()).select_from(ScheduleFire)) == 0
        kept = get_run(session=session, run_id=run.id)
        assert kept.schedule_id is None
        assert kept.triggered_by == "schedule:bfcl-nightly"
