"""JobClient against the session's real local Ray cluster."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mor.cluster import (
    ClusterAuthError,
    ClusterError,
    ClusterInfo,
    ClusterUnreachableError,
    JobClient,
    JobNotFoundError,
    job_runtime_env,
    normalize_dashboard_address,
)
from mor.settings import Settings

_IMPORT_JOB = """
import mor
from mor.settings import Settings
print("MOR_FILE", mor.__file__)
print("MOR_HOME", Settings().resolved_home)
for i in range(3):
    print("line", i)
"""


def test_submit_status_logs_list_and_tail(local_cluster: ClusterInfo, ray_settings: Settings, tmp_path: Path) -> None:
    import mor

    script = tmp_path / "import_job.py"
    script.write_text(_IMPORT_JOB)
    client = local_cluster.job_client()
    job_id = client.submit(
        f"python {script}",
        runtime_env=job_runtime_env(ray_settings, local=True),
        metadata={"mor.spec": "quickstart"},
        submission_id=f"mor-test-{int(time.time() * 1000)}",
    )
    assert job_id.startswith("mor-test-")
    final = client.wait(job_id, timeout_s=300)
    assert final.status == "SUCCEEDED" and final.is_terminal and final.driver_exit_code == 0
    assert final.metadata["mor.spec"] == "quickstart"
    assert final.entrypoint == f"python {script}"
    logs = client.logs(job_id)
    assert f"MOR_FILE {mor.__file__}" in logs
    assert f"MOR_HOME {ray_settings.resolved_home}" in logs
    lines = list(client.tail_logs(job_id))
    assert [line for line in lines if line.startswith("line ")] == ["line 0", "line 1", "line 2"]
    mine = client.list(metadata={"mor.spec": "quickstart"})
    assert job_id in [info.job_id for info in mine]
    assert client.list(metadata={"mor.spec": "no-such-spec"}) == []
    with pytest.raises(ClusterError, match="submission_id="):
        client.submit("python -c 'pass'", submission_id=job_id)  # ids are unique


def test_stop_a_running_job(local_cluster: ClusterInfo) -> None:
    client = local_cluster.job_client()
    job_id = client.submit("python -c 'import time; print(\"started\", flush=True); time.sleep(300)'")
    deadline = time.monotonic() + 120
    while client.status(job_id) != "RUNNING":
        assert time.monotonic() < deadline, "job never started"
        time.sleep(0.5)
    assert client.stop(job_id) is True
    assert client.wait(job_id, timeout_s=120).status == "STOPPED"
    assert client.stop(job_id) is False


def test_unknown_job_ids_are_explained(local_cluster: ClusterInfo) -> None:
    client = local_cluster.job_client()
    for call in (client.status, client.logs, client.stop):
        with pytest.raises(JobNotFoundError, match="job id: 'raysubmit_nope' is not known"):
            call("raysubmit_nope")


def test_an_unreachable_address_is_a_clear_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(ClusterUnreachableError, match=f"no Ray job server answers at http://127.0.0.1:{port}"):
        JobClient(f"127.0.0.1:{port}", timeout_s=2)


def test_a_missing_or_wrong_token_is_refused(local_cluster: ClusterInfo) -> None:
    with pytest.raises(ClusterAuthError, match="no token was found"):
        JobClient(local_cluster.dashboard_url, token="")
    with pytest.raises(ClusterAuthError, match="the token sent is wrong"):
        JobClient(local_cluster.dashboard_url, token="not-the-token")


def test_an_explicit_address_wins_over_ray_address(local_cluster: ClusterInfo, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAY_ADDRESS", "http://127.0.0.1:1")  # what Ray's own client would prefer
    client = JobClient(local_cluster.dashboard_url, token=local_cluster.token)
    assert isinstance(client.list(), list)


def test_address_forms() -> None:
    assert normalize_dashboard_address("head:8265") == "http://head:8265"
    assert normalize_dashboard_address("https://ray.example.com/") == "https://ray.example.com"
    with pytest.raises(ClusterError, match="a Ray Client address"):
        normalize_dashboard_address("ray://head:10001")
    with pytest.raises(ClusterError, match="address: got an empty string"):
        normalize_dashboard_address(" ")


_READ_ONLY = """
import sys
from mor.cluster import JobClient
client = JobClient(sys.argv[1], token=open(sys.argv[2]).read().strip())
jobs = client.list()
info = client.info(jobs[-1].job_id)
print(len(jobs), info.status, len(client.logs(info.job_id)) > 0, "ray" in sys.modules)
"""


def test_reading_jobs_does_not_import_ray(local_cluster: ClusterInfo, ray_settings: Settings, tmp_path: Path) -> None:
    client = local_cluster.job_client()
    job_id = client.submit("python -c 'print(1)'", submission_id=f"mor-read-{int(time.time() * 1000)}")
    client.wait(job_id, timeout_s=300)
    script = tmp_path / "read_only.py"
    script.write_text(_READ_ONLY)
    token = local_cluster.token_path
    out = subprocess.run(
        [sys.executable, str(script), local_cluster.dashboard_url, str(token)], capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    count, status, logged, imported = out.stdout.split()
    assert int(count) >= 1 and status == "SUCCEEDED" and logged == "True"
    assert imported == "False"  # list, info and logs go over the dashboard's REST API
