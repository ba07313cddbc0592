"""`mor cluster status|stop`: the embedded Ray cluster of a MOR_HOME, looked at and stopped from the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mor.cli.main import app
from mor.cluster import ClusterInfo, cluster_processes, ensure_local_cluster, find_local_cluster, stop_local_cluster
from mor.settings import Settings
from mor_testing import settings_for


def _invoke(monkeypatch: pytest.MonkeyPatch, home: Path, *args: str) -> tuple[int, str]:
    monkeypatch.setenv("MOR_HOME", str(home))
    monkeypatch.setenv("COLUMNS", "250")
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    result = CliRunner().invoke(app, ["cluster", *args])
    return result.exit_code, result.output


def test_status_shows_the_running_cluster(
    monkeypatch: pytest.MonkeyPatch, local_cluster: ClusterInfo, ray_settings: Settings
) -> None:
    code, output = _invoke(monkeypatch, ray_settings.home, "status")
    assert code == 0, output
    assert local_cluster.dashboard_url in output
    assert "jobs" in output and "processes" in output
    code, output = _invoke(monkeypatch, ray_settings.home, "status", "--json")
    data = json.loads(output)
    assert (data["running"], data["dashboard"], data["address"]) == (
        True,
        local_cluster.dashboard_url,
        local_cluster.address,
    )
    assert data["processes"] > 0 and isinstance(data["active_jobs"], list)


def test_status_and_stop_of_a_home_without_a_cluster(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    code, output = _invoke(monkeypatch, tmp_path / "empty", "status")
    assert code == 0 and "No embedded Ray cluster is running" in output
    code, output = _invoke(monkeypatch, tmp_path / "empty", "status", "--json")
    assert json.loads(output) == {"home": str(tmp_path / "empty"), "running": False}
    code, output = _invoke(monkeypatch, tmp_path / "empty", "stop")
    assert code == 0 and "No embedded Ray cluster was running" in output


@pytest.mark.slow
def test_stop_refuses_while_a_job_runs_then_force_stops_only_this_home(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, local_cluster: ClusterInfo, ray_settings: Settings
) -> None:
    other = settings_for(tmp_path / "home")
    info = ensure_local_cluster(other, num_cpus=1)
    try:
        job_id = info.job_client().submit("sleep 120", submission_id="mor-sleeper")
        code, output = _invoke(monkeypatch, other.home, "stop")
        assert code == 1
        assert job_id in output and "--force" in output
        assert find_local_cluster(other) is not None
        code, output = _invoke(monkeypatch, other.home, "stop", "--force")
        assert code == 0 and "Stopped the embedded Ray cluster" in output
        assert cluster_processes(other.ray_dir) == []
        assert find_local_cluster(other) is None
    finally:
        stop_local_cluster(other)
    assert find_local_cluster(ray_settings) is not None  # the session's cluster is untouched
