"""A second Ray node joined to a head the way an operator adds one (`ray start --address`), and the head's state
API read over HTTP with the cluster's token.

The node's processes carry their own cluster marker (`node_env` of its own ray dir), so `cluster_processes` finds
exactly them: killing "the second node" never touches the head, the test session's cluster or anyone else's Ray.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from mor.cluster import ClusterInfo, auth_headers, cluster_processes, node_env, ray_executable, stop_local_cluster
from mor_testing import settings_for

__all__ = ["WorkerNode", "alive_nodes", "free_port", "train_workers"]

_START_TIMEOUT_S = 180.0


def free_port() -> int:
    """A loopback port free right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class WorkerNode:
    """A worker node of `head` with `num_cpus` CPUs and the custom `resources`, kept under `home`.

    `home/ray` is its process marker (as for an embedded cluster, so `stop_local_cluster` of `home` stops exactly
    its processes); each start gets a fresh short temp dir (Ray's socket paths must stay under 107 bytes).
    `env` is added to the environment of its processes (e.g. MOR_HOME on the cluster's shared storage).
    """

    home: Path
    head: ClusterInfo
    num_cpus: int
    resources: dict[str, float]
    env: dict[str, str]
    node_id: str | None = None
    temp_dirs: list[Path] = field(default_factory=list)

    @property
    def marker_dir(self) -> Path:
        """The directory named by the cluster marker of this node's processes."""
        return self.home / "ray"

    def start(self) -> str:
        """Run `ray start --address=<head>` for this node and return its node id once the head lists it alive."""
        assert self.head.token_path is not None, "the head has token authentication on"
        self.marker_dir.mkdir(parents=True, exist_ok=True)
        temp_dir = Path(tempfile.mkdtemp(prefix="mor-node-"))
        self.temp_dirs.append(temp_dir)
        known = {node["node_id"] for node in alive_nodes(self.head)}
        command = [
            ray_executable(),
            "start",
            f"--address={self.head.address}",
            "--node-ip-address=127.0.0.1",
            f"--num-cpus={self.num_cpus}",
            f"--resources={json.dumps(self.resources)}",
            f"--temp-dir={temp_dir}",
            f"--dashboard-agent-listen-port={free_port()}",  # the default (52365) is one per machine
            "--disable-usage-stats",
        ]
        env = {**node_env(self.marker_dir, self.head.token_path), **self.env}
        log_path = self.home / "start.log"
        with log_path.open("a") as log:
            result = subprocess.run(
                command,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                timeout=_START_TIMEOUT_S,
                check=False,
            )
        assert result.returncode == 0, f"ray start --address failed ({result.returncode}):\n{log_path.read_text()}"
        deadline = time.monotonic() + 60
        while True:
            joined = [
                node["node_id"]
                for node in alive_nodes(self.head)
                if node["node_id"] not in known and self.resources.items() <= node["resources_total"].items()
            ]
            if joined:
                self.node_id = joined[0]
                return self.node_id
            assert time.monotonic() < deadline, f"the node did not join the head within 60 s:\n{log_path.read_text()}"
            time.sleep(0.5)

    def kill(self) -> list[int]:
        """SIGKILL every process of this node at once (raylet, agents, workers), as a lost machine would end them;
        return their ids."""
        pids = cluster_processes(self.marker_dir)
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                continue
        return pids

    def stop(self) -> None:
        """Stop whatever runs of this node (SIGTERM, then SIGKILL) and remove its temp dirs."""
        stop_local_cluster(settings_for(self.home), grace_s=5.0)
        for temp_dir in self.temp_dirs:
            shutil.rmtree(temp_dir, ignore_errors=True)


def _state(head: ClusterInfo, resource: str, **filters: str) -> list[dict[str, Any]]:
    """Rows of Ray's state API (`/api/v0/<resource>`) on the head's dashboard, filtered by equality."""
    params: list[tuple[str, str]] = [("limit", "1000"), ("detail", "false")]
    for key, value in filters.items():
        params += [("filter_keys", key), ("filter_predicates", "="), ("filter_values", value)]
    response = httpx.get(
        f"{head.dashboard_url}/api/v0/{resource}", params=params, headers=auth_headers(head.token), timeout=30
    )
    response.raise_for_status()
    return list(response.json()["data"]["result"]["result"])


def alive_nodes(head: ClusterInfo) -> list[dict[str, Any]]:
    """The cluster's alive nodes (node_id, is_head_node, resources_total, ...)."""
    return _state(head, "nodes", state="ALIVE")


def train_workers(head: ClusterInfo) -> list[tuple[str, int]]:
    """`(node_id, pid)` of every alive Ray Train worker actor of the cluster."""
    rows = _state(head, "actors", class_name="RayTrainWorker", state="ALIVE")
    return [(row["node_id"], int(row["pid"])) for row in rows]
