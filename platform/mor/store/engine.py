"""Engines and sessions: `make_engine(url)` and `session_scope(engine)`; nothing is created at import time."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.orm import Session, sessionmaker

__all__ = ["make_engine", "normalize_url", "session_scope"]

_SQLITE_BUSY_TIMEOUT_S = 30.0


def normalize_url(url: str | URL) -> URL:
    """Parse a database URL; a bare `postgresql://` gets the psycopg (v3) driver that mor installs."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def make_engine(url: str | URL, *, foreign_keys: bool = True, **kwargs: Any) -> Engine:
    """An engine for a SQLite or PostgreSQL URL, set up for several processes writing at once.

    On SQLite every transaction starts with `BEGIN IMMEDIATE` (it takes the write lock up front, so a
    read-then-write never fails half way with "database is locked"), waits up to 30 s for the lock, and
    enforces foreign keys unless `foreign_keys=False` (migrations turn it off: a batch table rebuild must not
    cascade). Extra keyword arguments go to `sqlalchemy.create_engine`.
    """
    parsed = normalize_url(url)
    if parsed.get_backend_name() == "sqlite":
        connect_args = dict(kwargs.pop("connect_args", {}))
        connect_args.setdefault("timeout", _SQLITE_BUSY_TIMEOUT_S)
        engine = create_engine(parsed, connect_args=connect_args, **kwargs)
        _take_over_sqlite_transactions(engine, foreign_keys=foreign_keys)
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    return create_engine(parsed, **kwargs)


def _take_over_sqlite_transactions(engine: Engine, *, foreign_keys: bool) -> None:
    # SQLAlchemy's documented recipe: stop the sqlite3 module from issuing its own BEGIN and emit ours.
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA foreign_keys = {'ON' if foreign_keys else 'OFF'}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """A session in one transaction: committed when the block ends, rolled back if it raises.

    Objects stay usable after the block (`expire_on_commit=False`), detached, with what they had loaded.
    """
    session = sessionmaker(bind=engine, expire_on_commit=False)()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
