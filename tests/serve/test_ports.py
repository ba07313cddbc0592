"""Who holds a port: real listening sockets, in this process and in a child that carries a mor cluster's marker."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from mor.cluster import CLUSTER_ENV_MARKER
from mor.serve.control import check_port
from mor.serve.lifecycle import ServeConflict
from mor.serve.ports import port_holders, port_is_free, wait_port_free

_LISTEN = """
import socket, sys
server = socket.socket()
server.bind(("127.0.0.1", 0))
server.listen()
print(server.getsockname()[1], flush=True)
sys.stdin.read()
"""


@pytest.fixture
def listening() -> Iterator[socket.socket]:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    yield server
    server.close()


def test_a_listening_port_is_busy_and_names_its_process(listening: socket.socket) -> None:
    port = listening.getsockname()[1]
    assert not port_is_free("127.0.0.1", port) and not port_is_free("0.0.0.0", port)
    holders = port_holders("127.0.0.1", port)
    assert [holder.pid for holder in holders] == [os.getpid()]
    assert holders[0].cluster_dir is None and not holders[0].is_serve_proxy
    assert holders[0].describe() == f"{holders[0].name!r} (pid {os.getpid()})"
    busy = rf"--port {port}: 127.0.0.1:{port} is already in use by .*pid {os.getpid()}"
    with pytest.raises(ServeConflict, match=busy):
        check_port("127.0.0.1", port, None)
    listening.close()
    assert wait_port_free("127.0.0.1", port, timeout_s=5) and port_holders("127.0.0.1", port) == []
    check_port("127.0.0.1", port, None)


def test_a_process_of_another_home_s_cluster_is_named_by_its_home(tmp_path: Path) -> None:
    other = tmp_path / "other-home" / "ray"
    env = {**os.environ, CLUSTER_ENV_MARKER: str(other)}
    child = subprocess.Popen(
        [sys.executable, "-c", _LISTEN], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        port = int(child.stdout.readline())
        [holder] = port_holders("127.0.0.1", port)
        assert holder.pid == child.pid and holder.cluster_dir == other
        with pytest.raises(ServeConflict) as caught:
            check_port("127.0.0.1", port, tmp_path / "my-home" / "ray")
        message = str(caught.value)
        assert f"(pid {child.pid}) of the embedded Ray cluster of MOR_HOME={other.parent}" in message
        assert f"`MOR_HOME={other.parent} mor cluster stop`" in message and "free now" in message
        check_port("127.0.0.1", port, other)  # its own cluster's process is no conflict
    finally:
        child.stdin.close()
        child.wait(timeout=10)
