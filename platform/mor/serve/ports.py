"""Who holds a TCP port on this machine: a free-port test and the listening processes, described for an error.

Ray Serve's proxy binds its port with `SO_REUSEPORT`, so a second cluster's proxy can listen on the same port
beside the first and requests then land on either at random. A plain bind (without that option) fails while
anyone listens, which is the test used here; `psutil` names the listeners, and a process of a mor embedded
cluster carries `MOR_RAY_CLUSTER=<ray_dir>` (`mor.cluster.CLUSTER_ENV_MARKER`), which names its MOR_HOME.
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

from mor.cluster import CLUSTER_ENV_MARKER

__all__ = ["PortHolder", "port_holders", "port_is_free", "wait_port_free"]

_WILDCARDS = {"0.0.0.0", "::", ""}


@dataclass(frozen=True)
class PortHolder:
    """A process listening on a port: its id and name, and the mor cluster it belongs to (its `ray_dir`)."""

    pid: int | None
    name: str
    cluster_dir: Path | None

    @property
    def is_serve_proxy(self) -> bool:
        """Whether it is a Ray Serve HTTP proxy actor (its process title is `ray::ProxyActor`)."""
        return "ProxyActor" in self.name

    def describe(self) -> str:
        """What a user needs to find it: `a Ray Serve proxy of another cluster (pid 12, MOR_HOME=/x)` and so on."""
        if self.pid is None:
            return "a process this user cannot see (run `ss -ltnp` as root to find it)"
        what = "a Ray Serve proxy" if self.is_serve_proxy else f"{self.name!r}"
        if self.cluster_dir is not None:
            return f"{what} (pid {self.pid}) of the embedded Ray cluster of MOR_HOME={self.cluster_dir.parent}"
        if self.is_serve_proxy:
            return f"{what} of a Ray cluster not started by mor (pid {self.pid})"
        return f"{what} (pid {self.pid})"


def _addresses(host: str) -> set[str]:
    if host in _WILDCARDS:
        return set()
    try:
        return {info[4][0] for info in socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)}
    except OSError:
        return {host}


def port_is_free(host: str, port: int) -> bool:
    """Whether `host:port` can be bound now (a listener on it, or on a wildcard address, makes it busy)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a closed port in TIME_WAIT counts as free
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def port_holders(host: str, port: int) -> list[PortHolder]:
    """The processes listening on `port` where a server on `host` would collide with them (one entry per
    process, an unknown one when the port is busy but its listener is not visible to this user)."""
    wanted = _addresses(host)
    holders: dict[int | None, PortHolder] = {}
    try:
        connections = psutil.net_connections(kind="tcp")
    except (psutil.Error, OSError):
        connections = []
    for connection in connections:
        if connection.status != psutil.CONN_LISTEN or not connection.laddr or connection.laddr.port != port:
            continue
        address = connection.laddr.ip
        if wanted and address not in _WILDCARDS and address not in wanted:
            continue
        holders.setdefault(connection.pid, _holder(connection.pid))
    if not holders and not port_is_free(host, port):
        holders[None] = PortHolder(pid=None, name="?", cluster_dir=None)
    return list(holders.values())


def _holder(pid: int | None) -> PortHolder:
    if pid is None:
        return PortHolder(pid=None, name="?", cluster_dir=None)
    try:
        process = psutil.Process(pid)
        name = process.name()
        try:
            marker = process.environ().get(CLUSTER_ENV_MARKER)
        except (psutil.Error, OSError):
            marker = None
    except (psutil.Error, OSError):
        return PortHolder(pid=pid, name="?", cluster_dir=None)
    return PortHolder(pid=pid, name=name, cluster_dir=Path(marker) if marker else None)


def wait_port_free(host: str, port: int, timeout_s: float) -> bool:
    """Wait up to `timeout_s` for `host:port` to be free; whether it is."""
    deadline = time.monotonic() + timeout_s
    while not port_is_free(host, port):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True
