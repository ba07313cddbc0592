"""Session-wide fixtures: one real local Ray cluster for every test that needs Ray (starting Ray takes seconds)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from mor.cluster import ClusterInfo, ensure_local_cluster, stop_local_cluster
from mor.settings import Settings


def settings_for(home: Path) -> Settings:
    """Settings of `home` that ignore the caller's environment."""
    return Settings(home=home, mlflow_tracking_uri=None, database_url=None, ray_address=None, benchmarks_dir=None)


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
