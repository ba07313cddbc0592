"""One real local Ray cluster shared by the whole test session (starting Ray takes seconds).

To share it with other test folders, move `ray_home` and `local_cluster` into tests/conftest.py unchanged;
tests then take the `local_cluster` fixture (a ClusterInfo) and `ray_settings` (the Settings of its home).
"""

from __future__ import annotations

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
    """The embedded cluster of `ray_settings`, started once and stopped at the end of the session."""
    info = ensure_local_cluster(ray_settings, num_cpus=4)
    try:
        yield info
    finally:
        stop_local_cluster(ray_settings)
