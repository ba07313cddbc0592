"""The embedded local Ray cluster of one MOR_HOME: start it detached, find it again, stop it.

State lives in `settings.ray_dir`:

- `cluster.json`: the addresses of the running head node (GCS, dashboard), its temp dir and token file; later CLI
  invocations of the same home read it to reach the same cluster.
- `auth_token`: the cluster's own token (token authentication stays on).
- `t/` (or, when that path is too long for Ray's unix sockets, a short directory under the system temp dir
  recorded in `cluster.json`): Ray's temp dir with session logs.
- `start.log`: output of the last `ray start`.

Every port is picked free at start, so clusters of different homes on one machine never collide, and every Ray
process of the cluster carries `MOR_RAY_CLUSTER=<ray_dir>` in its environment, which is how `stop_local_cluster`
finds exactly this cluster's processes (and no one else's).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx
import psutil

from mor.cluster.auth import TOKEN_FILE_NAME, auth_headers, create_token_file, read_token
from mor.cluster.errors import ClusterStartError
from mor.cluster.jobs import JobClient, normalize_dashboard_address
from mor.settings import Settings

__all__ = [
    "CLUSTER_ENV_MARKER",
    "ClusterInfo",
    "cluster_processes",
    "ensure_local_cluster",
    "find_local_cluster",
    "node_env",
    "ray_executable",
    "stop_local_cluster",
]

CLUSTER_ENV_MARKER = "MOR_RAY_CLUSTER"
_STATE_FILE = "cluster.json"
_LOCK_FILE = ".lock"
# Ray puts unix sockets at <temp_dir>/session_<date>_<time>_<usec>_<pid>/sockets/plasma_store; Linux allows
# 107 bytes in a socket path, the suffix takes up to ~66.
_MAX_TEMP_DIR_LEN = 40
_START_TIMEOUT_S = 180.0
_READY_TIMEOUT_S = 90.0
_BUSY_PATIENCE_S = 30.0
_START_ATTEMPTS = 2


@dataclass(frozen=True)
class ClusterInfo:
    """How to reach a Ray cluster.

    `address` is what `ray.init(address=...)` takes (the GCS address for the embedded cluster), `dashboard_url`
    what the Job Submission API takes. `local` is True for the embedded cluster of this MOR_HOME, whose
    `token_path`, `temp_dir` and `ray_dir` are then set; `started` says whether this call started it.
    """

    address: str
    dashboard_url: str
    local: bool
    token_path: Path | None = None
    temp_dir: Path | None = None
    ray_dir: Path | None = None
    num_cpus: int | None = None
    started: bool = False

    @property
    def token(self) -> str | None:
        """The cluster's token when this process knows it (the embedded cluster's token file), else None."""
        return read_token(self.token_path) if self.token_path else None

    @property
    def session_dir(self) -> Path | None:
        """The current Ray session directory (logs under `logs/`) of the embedded cluster."""
        if self.temp_dir is None:
            return None
        latest = self.temp_dir / "session_latest"
        return latest.resolve() if latest.exists() else None

    def job_client(self, *, timeout_s: float = 10.0) -> JobClient:
        """A JobClient for this cluster, authenticated with the embedded cluster's token when there is one."""
        return JobClient(self.dashboard_url, token=self.token, timeout_s=timeout_s)

    def env(self) -> dict[str, str]:
        """Environment variables a process needs to `ray.init()` into this cluster (address and token file)."""
        env = {"RAY_ADDRESS": self.address}
        if self.token_path is not None:
            env.update({"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(self.token_path)})
        return env

    def _to_json(self) -> str:
        data = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(self).items() if k != "started"}
        return json.dumps(data, indent=2, sort_keys=True)

    @classmethod
    def _from_json(cls, text: str) -> ClusterInfo:
        data = json.loads(text)
        for key in ("token_path", "temp_dir", "ray_dir"):
            if data.get(key):
                data[key] = Path(data[key])
        return cls(**data)


def ensure_local_cluster(
    settings: Settings,
    address: str | None = None,
    *,
    num_cpus: int | None = None,
    object_store_memory: int | None = None,
) -> ClusterInfo:
    """The cluster to submit jobs to: `address`, else `settings.ray_address`, else the embedded local cluster.

    The embedded cluster of `settings.home` is reused when it is running and started (detached, so it outlives
    this process) when it is not. `num_cpus` defaults to the machine's CPU count, `object_store_memory` (bytes)
    to Ray's default; both only apply when a new head node is started.
    """
    if num_cpus is not None and num_cpus < 1:
        raise ClusterStartError(f"num_cpus: got {num_cpus}, must be at least 1; e.g. num_cpus=2")
    external = address or settings.ray_address
    if external:
        dashboard_url = normalize_dashboard_address(external)
        return ClusterInfo(address=external, dashboard_url=dashboard_url, local=False)
    ray_dir = settings.ray_dir
    ray_dir.mkdir(parents=True, exist_ok=True)
    with _locked(ray_dir):
        running = _running_cluster(ray_dir)
        if running is not None:
            return running
        _kill_leftovers(ray_dir, grace_s=3.0)
        attempts_left = _START_ATTEMPTS
        while True:
            try:
                return _start_head(ray_dir, num_cpus=num_cpus, object_store_memory=object_store_memory)
            except _StartExited as exc:
                # A port picked free can be taken by someone else before Ray binds it: retry with new ports.
                attempts_left -= 1
                if attempts_left == 0 or "in use" not in str(exc):
                    raise


def find_local_cluster(settings: Settings) -> ClusterInfo | None:
    """The running embedded cluster of `settings.home`, or None; never starts one."""
    ray_dir = settings.ray_dir
    if not (ray_dir / _STATE_FILE).is_file():
        return None
    return _running_cluster(ray_dir)


def stop_local_cluster(settings: Settings, *, grace_s: float = 10.0) -> bool:
    """Stop the embedded cluster of `settings.home`; True when processes were stopped.

    Only processes carrying this home's cluster marker are signalled (SIGTERM, then SIGKILL after `grace_s`).
    """
    ray_dir = settings.ray_dir
    if not ray_dir.is_dir():
        return False
    with _locked(ray_dir):
        info = _read_state(ray_dir)
        stopped = _kill_leftovers(ray_dir, grace_s=grace_s)
        (ray_dir / _STATE_FILE).unlink(missing_ok=True)
        if info is not None and info.temp_dir is not None and not _is_within(info.temp_dir, ray_dir):
            shutil.rmtree(info.temp_dir, ignore_errors=True)
        return stopped


def cluster_processes(ray_dir: Path) -> list[int]:
    """Ids of the live processes that belong to the embedded cluster kept in `ray_dir`."""
    marker = f"{CLUSTER_ENV_MARKER}={ray_dir}"
    pids: list[int] = []
    for proc in psutil.process_iter(["pid"]):
        if proc.pid == os.getpid():
            continue
        try:
            if proc.status() == psutil.STATUS_ZOMBIE:
                continue
            environ = proc.environ()
        except (psutil.Error, OSError):
            continue
        if f"{CLUSTER_ENV_MARKER}={environ.get(CLUSTER_ENV_MARKER)}" == marker:
            pids.append(proc.pid)
    return pids


class _StartExited(ClusterStartError):
    """`ray start` exited with an error (worth one retry with fresh ports)."""


def _running_cluster(ray_dir: Path) -> ClusterInfo | None:
    """The recorded cluster if its job server answers; a busy machine gets `_BUSY_PATIENCE_S` to answer while
    the cluster's processes are alive, so a slow dashboard is never mistaken for a dead one."""
    info = _read_state(ray_dir)
    if info is None:
        return None
    deadline = time.monotonic() + _BUSY_PATIENCE_S
    while not _dashboard_ready(info.dashboard_url, info.token, timeout_s=5.0):
        if time.monotonic() > deadline or not cluster_processes(ray_dir):
            return None
        time.sleep(1.0)
    return info


def _read_state(ray_dir: Path) -> ClusterInfo | None:
    try:
        return ClusterInfo._from_json((ray_dir / _STATE_FILE).read_text())
    except (FileNotFoundError, ValueError, TypeError):
        return None


def _start_head(ray_dir: Path, *, num_cpus: int | None, object_store_memory: int | None) -> ClusterInfo:
    token_path = ray_dir / TOKEN_FILE_NAME
    token = create_token_file(token_path)
    temp_dir = _temp_dir_for(ray_dir)
    temp_dir.mkdir(parents=True, exist_ok=True)
    gcs_port, dashboard_port, client_port, agent_port = _free_ports(4)
    cpus = num_cpus if num_cpus is not None else (os.cpu_count() or 1)
    command = [
        ray_executable(),
        "start",
        "--head",
        f"--temp-dir={temp_dir}",
        f"--port={gcs_port}",
        f"--dashboard-port={dashboard_port}",
        "--node-ip-address=127.0.0.1",  # everything on loopback: no traffic to the machine's external interface
        "--dashboard-host=127.0.0.1",
        "--include-dashboard=true",
        f"--ray-client-server-port={client_port}",
        f"--dashboard-agent-listen-port={agent_port}",
        f"--num-cpus={cpus}",
        "--disable-usage-stats",
    ]
    if object_store_memory is not None:
        command.append(f"--object-store-memory={object_store_memory}")
    env = node_env(ray_dir, token_path)
    log_path = ray_dir / "start.log"
    with log_path.open("w") as log:
        try:
            result = subprocess.run(
                command,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # Ctrl+C in the CLI must not reach the cluster
                timeout=_START_TIMEOUT_S,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            _abandon_start(ray_dir, temp_dir)
            raise ClusterStartError(
                f"ray start: the head node did not start within {_START_TIMEOUT_S:.0f} s; see {log_path}"
            ) from exc
    if result.returncode != 0:
        kept = _abandon_start(ray_dir, temp_dir)
        raise _StartExited(
            f"ray start: exited with code {result.returncode}; last lines of {log_path}:\n{_tail(log_path)}\n"
            "fix: correct the cause above and retry"
            + (f"; Ray's own logs are under {temp_dir}/session_latest/logs" if kept else "")
        )
    dashboard_url = f"http://127.0.0.1:{dashboard_port}"
    deadline = time.monotonic() + _READY_TIMEOUT_S
    while not _dashboard_ready(dashboard_url, token, timeout_s=3.0):
        if time.monotonic() > deadline:
            _dump_dashboard_log(temp_dir, log_path)
            _abandon_start(ray_dir, temp_dir)
            raise ClusterStartError(
                f"ray start: the job server at {dashboard_url} did not answer within {_READY_TIMEOUT_S:.0f} s; "
                f"the dashboard's log is appended to {log_path}"
            )
        time.sleep(0.5)
    info = ClusterInfo(
        address=_gcs_address(temp_dir, gcs_port),
        dashboard_url=dashboard_url,
        local=True,
        token_path=token_path,
        temp_dir=temp_dir,
        ray_dir=ray_dir,
        num_cpus=cpus,
        started=True,
    )
    state_path = ray_dir / _STATE_FILE
    partial = state_path.with_suffix(".tmp")
    partial.write_text(info._to_json())
    partial.replace(state_path)
    return info


def _abandon_start(ray_dir: Path, temp_dir: Path) -> bool:
    """Clean up after a failed start; True when Ray's temp dir (with its logs) was kept under `ray_dir`."""
    _kill_leftovers(ray_dir, grace_s=3.0)
    if _is_within(temp_dir, ray_dir):
        return True
    shutil.rmtree(temp_dir, ignore_errors=True)  # a short dir under the system temp dir: do not leak it
    return False


def _dump_dashboard_log(temp_dir: Path, log_path: Path) -> None:
    dashboard_log = temp_dir / "session_latest" / "logs" / "dashboard.log"
    try:
        with log_path.open("a") as log:
            log.write(f"\n--- {dashboard_log} ---\n{_tail(dashboard_log, 50)}\n")
    except OSError:
        pass


def node_env(ray_dir: Path, token_path: Path) -> dict[str, str]:
    """Environment of a Ray node's processes, inherited by every worker and job driver: the cluster marker of
    `ray_dir` (how `cluster_processes` finds them), token auth with the token at `token_path`, and this
    interpreter's directory first on PATH. The head node of the embedded cluster is started with it."""
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "RAY_AUTH_TOKEN")}
    env.update(
        {
            CLUSTER_ENV_MARKER: str(ray_dir),
            "RAY_AUTH_MODE": "token",
            "RAY_AUTH_TOKEN_PATH": str(token_path),
            "RAY_USAGE_STATS_ENABLED": "0",
            # Job entrypoints run `python ...`: make it this interpreter (the one with mor installed).
            "PATH": os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")]),
        }
    )
    return env


def ray_executable() -> str:
    """The `ray` command of this interpreter's environment (else the one on PATH)."""
    candidate = Path(sys.executable).parent / "ray"
    if candidate.is_file():
        return str(candidate)
    found = shutil.which("ray")
    if found is None:
        raise ClusterStartError(
            "ray: the `ray` command was not found next to the Python interpreter or on PATH; "
            "fix: install the project with its dependencies (`pip install -e .`)"
        )
    return found


def _temp_dir_for(ray_dir: Path) -> Path:
    preferred = ray_dir / "t"
    if len(str(preferred)) <= _MAX_TEMP_DIR_LEN:
        return preferred
    digest = hashlib.sha256(str(ray_dir).encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"mor-ray-{digest}"


def _gcs_address(temp_dir: Path, port: int) -> str:
    """The GCS address drivers connect to: loopback, since the head node is started with node IP 127.0.0.1 (a
    driver that reached it through another interface would look for a raylet on that IP and find none)."""
    del temp_dir  # Ray's ray_current_cluster file names the machine's interface address, not the node IP
    return f"127.0.0.1:{port}"


def _free_ports(count: int) -> list[int]:
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("", 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _dashboard_ready(dashboard_url: str, token: str | None, *, timeout_s: float) -> bool:
    try:
        version = httpx.get(f"{dashboard_url}/api/version", headers=auth_headers(token), timeout=timeout_s)
        if version.status_code != 200:
            return False
        jobs = httpx.get(f"{dashboard_url}/api/jobs/", headers=auth_headers(token), timeout=timeout_s)
    except httpx.HTTPError:
        return False
    return jobs.status_code == 200


def _kill_leftovers(ray_dir: Path, *, grace_s: float = 10.0) -> bool:
    """Terminate this cluster's processes: raylet first, GCS last, as `ray stop` orders them."""
    pids = cluster_processes(ray_dir)
    if not pids:
        return False
    procs: list[psutil.Process] = []
    for pid in pids:
        try:
            procs.append(psutil.Process(pid))
        except psutil.NoSuchProcess:
            continue

    def _rank(proc: psutil.Process) -> int:
        try:
            name = proc.name()
        except psutil.Error:
            return 1
        return 0 if "raylet" in name else 2 if "gcs_server" in name else 1

    for bucket in (0, 1, 2):
        group = [proc for proc in procs if _rank(proc) == bucket]
        for proc in group:
            try:
                proc.terminate()
            except psutil.NoSuchProcess:
                continue
        alive = _wait_gone(group, timeout_s=grace_s if bucket != 1 else min(grace_s, 3.0))
        for proc in alive:
            try:
                proc.kill()
            except psutil.NoSuchProcess:
                continue
        _wait_gone(alive, timeout_s=3.0)
    # Workers and drivers forked after the first scan.
    for pid in cluster_processes(ray_dir):
        try:
            psutil.Process(pid).kill()
        except psutil.NoSuchProcess:
            continue
    return True


def _wait_gone(procs: list[psutil.Process], *, timeout_s: float) -> list[psutil.Process]:
    """Wait until `procs` have exited (zombies count as exited: they are not ours to reap); return the rest."""
    deadline = time.monotonic() + timeout_s
    alive = list(procs)
    while alive:
        still = []
        for proc in alive:
            try:
                if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE:
                    still.append(proc)
            except psutil.NoSuchProcess:
                continue
        alive = still
        if not alive or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    return alive


@contextmanager
def _locked(ray_dir: Path) -> Iterator[None]:
    """Serialise start/stop of one home's cluster across processes."""
    with (ray_dir / _LOCK_FILE).open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _is_within(path: Path, parent: Path) -> bool:
    try:
        path.resolve().relative_to(parent.resolve())
    except ValueError:
        return False
    return True


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"
