"""The embedded local cluster: token auth on, found again by later processes, one cluster per MOR_HOME."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx
import pytest

from mor.cluster import (
    ClusterInfo,
    ClusterStartError,
    cluster_processes,
    ensure_local_cluster,
    find_local_cluster,
    stop_local_cluster,
)
from mor.settings import Settings
from mor_testing import settings_for


def _digest(ray_dir: Path) -> str:
    return hashlib.sha256(str(ray_dir).encode()).hexdigest()[:12]


def _child_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "MOR_", "MLFLOW_"))}
    env.update(extra)
    return env


def test_the_cluster_is_local_authenticated_and_recorded(local_cluster: ClusterInfo, ray_settings: Settings) -> None:
    assert local_cluster.local and local_cluster.num_cpus is not None and local_cluster.num_cpus >= 1
    assert local_cluster.ray_dir == ray_settings.ray_dir
    assert local_cluster.token_path == ray_settings.ray_dir / "auth_token"
    assert local_cluster.session_dir is not None and (local_cluster.session_dir / "logs").is_dir()
    assert (ray_settings.ray_dir / "cluster.json").is_file()
    without_token = httpx.get(f"{local_cluster.dashboard_url}/api/jobs/", timeout=10)
    assert without_token.status_code == 401
    with_token = httpx.get(
        f"{local_cluster.dashboard_url}/api/jobs/",
        headers={"Authorization": f"Bearer {local_cluster.token}"},
        timeout=10,
    )
    assert with_token.status_code == 200
    assert len(cluster_processes(ray_settings.ray_dir)) >= 3  # gcs, raylet, dashboard, ...


def test_a_second_call_reuses_the_running_cluster(local_cluster: ClusterInfo, ray_settings: Settings) -> None:
    again = ensure_local_cluster(ray_settings)
    assert not again.started
    assert (again.address, again.dashboard_url) == (local_cluster.address, local_cluster.dashboard_url)
    assert find_local_cluster(ray_settings) == again


def test_a_later_process_of_the_same_home_finds_it(local_cluster: ClusterInfo, ray_settings: Settings) -> None:
    code = (
        "from mor.cluster import find_local_cluster; from mor.settings import Settings; "
        "info = find_local_cluster(Settings()); print(info.dashboard_url); "
        "print(len(info.job_client().list()) >= 0)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        env=_child_env(MOR_HOME=str(ray_settings.home)),
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert result.stdout.split() == [local_cluster.dashboard_url, "True"]


def test_a_driver_connects_with_the_cluster_env(local_cluster: ClusterInfo) -> None:
    code = "import ray; ray.init(); print(int(ray.cluster_resources()['CPU']))"
    result = subprocess.run(
        [sys.executable, "-c", code],
        env=_child_env(**local_cluster.env()),
        capture_output=True,
        text=True,
        timeout=180,
        check=True,
    )
    assert result.stdout.strip().splitlines()[-1] == str(local_cluster.num_cpus)


def test_another_home_sees_no_cluster(tmp_path: Path, local_cluster: ClusterInfo) -> None:
    assert find_local_cluster(settings_for(tmp_path / "other")) is None
    assert stop_local_cluster(settings_for(tmp_path / "other")) is False


def test_an_explicit_address_is_used_as_is(tmp_path: Path) -> None:
    settings = settings_for(tmp_path / "home")
    info = ensure_local_cluster(settings, "10.1.2.3:8265")
    assert (info.address, info.dashboard_url, info.local) == ("10.1.2.3:8265", "http://10.1.2.3:8265", False)
    env_settings = Settings(
        home=tmp_path / "home",
        ray_address="https://ray.example.com/",
        mlflow_tracking_uri=None,
        database_url=None,
        benchmarks_dir=None,
    )
    assert ensure_local_cluster(env_settings).dashboard_url == "https://ray.example.com"
    assert not (tmp_path / "home" / "ray" / "cluster.json").exists()


@pytest.mark.slow
def test_two_homes_run_two_clusters_and_stop_touches_only_its_own(
    tmp_path_factory: pytest.TempPathFactory, local_cluster: ClusterInfo, ray_settings: Settings
) -> None:
    other = settings_for(tmp_path_factory.mktemp("second-home"))
    # Started by a process that then exits, as `mor job submit` does: the cluster must outlive it.
    code = (
        "from mor.cluster import ensure_local_cluster; from mor.settings import Settings; "
        "print(ensure_local_cluster(Settings(), num_cpus=1).started)"
    )
    started = subprocess.run(
        [sys.executable, "-c", code],
        env=_child_env(MOR_HOME=str(other.home)),
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    assert started.stdout.split()[-1] == "True"
    try:
        info = find_local_cluster(other)
        assert info is not None and info.num_cpus == 1
        assert info.dashboard_url != local_cluster.dashboard_url and info.address != local_cluster.address
        assert info.token != local_cluster.token
        own = set(cluster_processes(other.ray_dir))
        assert own and own.isdisjoint(cluster_processes(ray_settings.ray_dir))
        assert info.job_client().list() == []
    finally:
        assert stop_local_cluster(other) is True
    assert cluster_processes(other.ray_dir) == []
    assert find_local_cluster(other) is None
    assert not (other.ray_dir / "cluster.json").exists()
    assert stop_local_cluster(other) is False
    # The session's cluster is untouched.
    assert find_local_cluster(ray_settings) is not None


@pytest.mark.slow
def test_a_failed_start_is_explained_and_leaves_nothing_running(tmp_path_factory: pytest.TempPathFactory) -> None:
    settings = settings_for(tmp_path_factory.mktemp("bad-home"))
    with pytest.raises(ClusterStartError) as error:
        ensure_local_cluster(settings, object_store_memory=1)  # Ray's minimum is 75 MiB
    message = str(error.value)
    assert "ray start: exited with code" in message
    assert "minimum allowed is" in message  # Ray's own reason, from the start log
    assert cluster_processes(settings.ray_dir) == []  # the GCS and dashboard it had started are gone
    assert find_local_cluster(settings) is None
    assert not list(Path(tempfile.gettempdir()).glob(f"mor-ray-{_digest(settings.ray_dir)}"))  # no leak
    with pytest.raises(ClusterStartError, match="num_cpus: got 0, must be at least 1"):
        ensure_local_cluster(settings, num_cpus=0)
