"""Engines, sessions and the UTC timestamp type."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import Engine, select, text
from sqlalchemy.exc import StatementError

from mor.store import EvaluatedModel, make_engine, normalize_url, session_scope


def test_normalize_url_gives_postgresql_the_psycopg_driver() -> None:
    assert normalize_url("postgresql://u@h:5432/db").drivername == "postgresql+psycopg"
    assert normalize_url("postgresql+psycopg://u@h/db").drivername == "postgresql+psycopg"
    assert normalize_url("sqlite:///x.db").drivername == "sqlite"


def test_sqlite_enforces_foreign_keys_and_begins_immediate(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'a.db'}")
    try:
        with engine.connect() as connection:
            assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000
    finally:
        engine.dispose()
    off = make_engine(f"sqlite:///{tmp_path / 'a.db'}", foreign_keys=False)
    try:
        with off.connect() as connection:
            assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 0
    finally:
        off.dispose()


def test_session_scope_commits_or_rolls_back(engine: Engine) -> None:
    at = datetime(2025, 1, 1, tzinfo=UTC)
    with session_scope(engine) as session:
        session.add(EvaluatedModel(uri="models:/a@champion", name="a", version="1", created_at=at))
    with pytest.raises(RuntimeError, match="boom"):
        with session_scope(engine) as session:
            session.add(EvaluatedModel(uri="models:/b@champion", name="b", version="1", created_at=at))
            session.flush()
            raise RuntimeError("boom")
    with session_scope(engine) as session:
        names = session.scalars(select(EvaluatedModel.name)).all()
    assert names == ["a"]


def test_timestamps_come_back_in_utc(engine: Engine) -> None:
    paris = timezone(timedelta(hours=2))
    with session_scope(engine) as session:
        model = EvaluatedModel(uri="u", name="n", created_at=datetime(2025, 6, 1, 4, 30, tzinfo=paris))
        session.add(model)
    with session_scope(engine) as session:
        loaded = session.scalars(select(EvaluatedModel)).one()
    assert loaded.created_at == datetime(2025, 6, 1, 2, 30, tzinfo=UTC)
    assert loaded.created_at.tzinfo == UTC


def test_naive_timestamps_are_refused(engine: Engine) -> None:
    with pytest.raises(StatementError, match="naive datetime"):
        with session_scope(engine) as session:
            session.add(EvaluatedModel(uri="u", name="n", created_at=datetime(2025, 6, 1)))


def test_engine_talks_to_the_database(engine: Engine) -> None:
    with engine.connect() as connection:
        assert connection.execute(text("SELECT 1")).scalar() == 1
