"""Test helpers for databases: a throw-away PostgreSQL database per test session, and a reset between tests.

Used by the test suites (tests/store, tests/scheduler); it creates nothing unless called.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import text
from sqlalchemy.engine import URL
from sqlalchemy.pool import NullPool

from mor.store.engine import make_engine, normalize_url

__all__ = [
    "DEFAULT_POSTGRES_ADMIN_URL",
    "postgres_admin_url",
    "postgres_reachable",
    "reset_schema",
    "temporary_postgres_database",
]

DEFAULT_POSTGRES_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def postgres_admin_url() -> str:
    """The server used for PostgreSQL tests: `MOR_TEST_POSTGRES_URL`, else the loopback server's `test` database."""
    return os.environ.get("MOR_TEST_POSTGRES_URL", DEFAULT_POSTGRES_ADMIN_URL)


def postgres_reachable(admin_url: str | URL, timeout_s: int = 3) -> str | None:
    """None when the server answers; otherwise why it does not (for a skip or failure message)."""
    engine = make_engine(admin_url, poolclass=NullPool, connect_args={"connect_timeout": timeout_s})
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        return None
    except Exception as exc:  # any connection failure is an answer here
        return f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
    finally:
        engine.dispose()


@contextmanager
def temporary_postgres_database(admin_url: str | URL, prefix: str = "mor_test") -> Iterator[str]:
    """Create a uniquely named database on the server of `admin_url`, yield its URL, drop it afterwards.

    The name carries the process id and a random suffix, so parallel test runs never collide.
    """
    admin = normalize_url(admin_url)
    name = f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    engine = make_engine(admin, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        try:
            yield admin.set(database=name).render_as_string(hide_password=False)
        finally:
            with engine.connect() as connection:
                connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        engine.dispose()


def reset_schema(url: str | URL) -> None:
    """Empty a database completely: PostgreSQL gets a fresh `public` schema; a SQLite file loses every table."""
    engine = make_engine(url, poolclass=NullPool, foreign_keys=False)
    try:
        with engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                connection.execute(text("DROP SCHEMA public CASCADE"))
                connection.execute(text("CREATE SCHEMA public"))
            else:
                names = connection.execute(
                    text("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")
                ).scalars()
                for table in list(names):
                    connection.execute(text(f'DROP TABLE "{table}"'))
    finally:
        engine.dispose()
