"""Session-wide fixtures: one real local Ray cluster for every test that needs Ray (starting Ray takes seconds), and
the databases: `database_url` is an empty database, once SQLite (a temp file) and once PostgreSQL (marked
`postgres`); `engine` is the same database migrated to head. PostgreSQL tests use one fresh, uniquely named
database per test session (dropped afterwards) whose schema is reset before each test. With CI=true an unreachable
PostgreSQL fails the tests; elsewhere they skip, saying why."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from sqlalchemy import Engine

from mor.cluster import ClusterInfo, ensure_local_cluster, stop_local_cluster
from mor.settings import Settings
from mor.store import make_engine, upgrade
from mor.store.testing import postgres_admin_url, postgres_reachable, reset_schema, temporary_postgres_database
from mor_testing import settings_for


@pytest.fixture(scope="session")
def ray_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """The Settings whose home holds the session's Ray cluster."""
    return settings_for(tmp_path_factory.mktemp("ray-home"))


@pytest.fixture(scope="session")
def local_cluster(ray_settings: Settings) -> Iterator[ClusterInfo]:
    """The embedded cluster of `ray_settings`, started once and stopped at the end of the session.

    The test process is a client of this cluster: its token settings are in the environment before Ray's core
    is first used in this process (Ray reads them once per process).
    """
    saved = {key: os.environ.get(key) for key in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN_PATH")}
    os.environ.update({"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(ray_settings.ray_dir / "auth_token")})
    info = ensure_local_cluster(ray_settings, num_cpus=4)
    try:
        yield info
    finally:
        stop_local_cluster(ray_settings)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture(scope="session")
def ray_connected(local_cluster: ClusterInfo) -> Iterator[None]:
    """This test process connected as a driver to the session's cluster (for in-process Ray Train runs)."""
    import ray

    ray.init(address=local_cluster.address, log_to_driver=False)
    try:
        yield
    finally:
        ray.shutdown()


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


@pytest.fixture
def one_torch_thread() -> Iterator[None]:
    """One intra-op thread: the tiny models are faster so, and the 2-core machine is shared."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
