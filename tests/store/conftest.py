"""Database fixtures for the store tests (candidates for tests/conftest.py, shared with tests/scheduler).

`database_url` is an empty database, once SQLite (a temp file) and once PostgreSQL (marked `postgres`);
`engine` is the same database migrated to head. PostgreSQL tests use one fresh, uniquely named database per
test session (dropped afterwards) whose schema is reset before each test. With CI=true an unreachable
PostgreSQL fails the tests; elsewhere they skip, saying why.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from mor.store import make_engine, upgrade
from mor.store.testing import postgres_admin_url, postgres_reachable, reset_schema, temporary_postgres_database


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """URL of a fresh PostgreSQL database for this test session."""
    admin = postgres_admin_url()
    problem = postgres_reachable(admin)
    if problem is not None:
        message = f"PostgreSQL at {admin} is unreachable ({problem}); set MOR_TEST_POSTGRES_URL or start it"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    with temporary_postgres_database(admin) as url:
        yield url


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database: SQLite file or the session's PostgreSQL database with a fresh schema."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'mor.db'}"
    url: str = request.getfixturevalue("postgres_url")
    reset_schema(url)
    return url


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    """An engine on `database_url`, migrated to head."""
    upgrade(database_url)
    engine = make_engine(database_url)
    yield engine
    engine.dispose()
