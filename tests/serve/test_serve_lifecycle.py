"""`mor serve`'s lifecycle through the real CLI on a MOR_HOME of its own (its own embedded Ray cluster): stopping
frees the port and the same port serves again; a port another home's cluster holds, a port change while another
server runs and a second server of the same application are refused at once with what to do; a server killed
with SIGKILL is replaced by the next one, on another port, whose proxy restart frees the old port."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from mor.settings import Settings
from mor_testing import settings_for

from .processes import MorServe, free_port, serve_env

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """A MOR_HOME with its embedded cluster started (2 CPUs: one replica at a time needs 0.5)."""
    from mor.cluster import ensure_local_cluster, stop_local_cluster

    settings = settings_for(tmp_path_factory.mktemp("serve-home"))
    ensure_local_cluster(settings, num_cpus=2)
    try:
        yield settings
    finally:
        stop_local_cluster(settings)


def _serve_state(settings: Settings):
    from mor.cluster import find_local_cluster
    from mor.serve.lifecycle import read_serve_state

    cluster = find_local_cluster(settings)
    assert cluster is not None
    return read_serve_state(cluster.dashboard_url, cluster.token)


def _answers(base_url: str, key: str) -> list[str]:
    client = openai.OpenAI(base_url=base_url, api_key=key, max_retries=0, timeout=120)
    return [model.id for model in client.models.list()]


def _refused(home: Path, *arguments: str) -> str:
    """Run a `mor serve` that must be refused: exit code 1 before it serves; its output in one line."""
    command = [sys.executable, "-m", "mor.cli.main", "serve", *arguments]
    done = subprocess.run(command, env=serve_env(home), capture_output=True, text=True, timeout=300)
    output = " ".join((done.stdout + done.stderr).split())
    assert done.returncode == 1 and "Serving" not in output, output
    return output


def test_stop_frees_the_port_and_the_same_port_serves_again(home: Settings, agent_dir: Path) -> None:
    from mor.serve.ports import port_is_free

    port = free_port()
    for stop in (signal.SIGINT, signal.SIGTERM):
        server = MorServe(home.home, str(agent_dir), "--port", str(port), "--replica-cpus", "0.5")
        try:
            base_url, key = server.wait_ready()
            assert base_url == f"http://127.0.0.1:{port}/v1"
            assert _answers(base_url, key) == ["serve-test-agent"]
            assert server.stop(stop) == 0, server.output
        finally:
            server.kill()
        assert f"Removed the application and shut Ray Serve down; 127.0.0.1:{port} is free." in server.output
        assert server.output.rstrip().endswith("Stopped.")
        assert port_is_free("127.0.0.1", port)  # the proxy stopped listening
        state = _serve_state(home)
        assert not state.running and state.applications == {}
        assert not list((home.resolved_home / "serve").glob("*.json"))  # its owner record is gone


def test_conflicts_are_refused_at_once_and_a_killed_server_is_replaced_on_another_port(
    home: Settings, agent_dir: Path, tmp_path: Path
) -> None:
    from mor.serve.ports import port_is_free

    first_port, second_port = free_port(), free_port()
    first = MorServe(home.home, str(agent_dir), "--port", str(first_port), "--replica-cpus", "0.5")
    try:
        first.wait_ready()
        # another MOR_HOME wants the same port: refused before its cluster is started
        other_home = tmp_path / "other-home"
        output = _refused(other_home, str(agent_dir), "--port", str(first_port))
        assert f"--port {first_port}: 127.0.0.1:{first_port} is already in use by a Ray Serve proxy (pid" in output
        assert f"of the embedded Ray cluster of MOR_HOME={home.resolved_home}" in output
        assert not (other_home / "ray").exists()
        # the same home, another port, while the first server runs: the proxy cannot move
        output = _refused(
            home.home, str(agent_dir), "--port", str(second_port), "--app-name", "b", "--route-prefix", "/b"
        )
        assert f"already listens on 127.0.0.1:{first_port} for 'mor-agent' at / (mor serve (pid {first.pid})" in output
        assert f"(--host 127.0.0.1 --port {first_port})" in output and f"--port {second_port} then restarts" in output
        assert port_is_free("127.0.0.1", second_port)
        # the same application again: it belongs to the running server
        output = _refused(home.home, str(agent_dir), "--port", str(first_port))
        assert f"application 'mor-agent' is already served on this cluster by mor serve (pid {first.pid})" in output
        assert set(_serve_state(home).applications) == {"mor-agent"}
    finally:
        first.kill()  # a crash: it removes nothing
    assert not port_is_free("127.0.0.1", first_port)  # its application and the proxy were left behind
    second = MorServe(home.home, str(agent_dir), "--port", str(second_port), "--replica-cpus", "0.5")
    try:
        base_url, key = second.wait_ready()
        assert f"Removing application 'mor-agent', left by mor serve (pid {first.pid})" in second.output
        assert (
            f"Ray Serve's proxy listened on 127.0.0.1:{first_port}; restarting it on 127.0.0.1:{second_port}."
            in second.output
        )
        assert port_is_free("127.0.0.1", first_port)
        assert _answers(base_url, key) == ["serve-test-agent"]
        state = _serve_state(home)
        assert (state.port, set(state.applications)) == (second_port, {"mor-agent"})
        assert second.stop() == 0, second.output
    finally:
        second.kill()
    assert port_is_free("127.0.0.1", second_port)
