"""How `mor serve` shares a cluster's Ray Serve: who owns which application, what deploying needs, what stopping
leaves.

Ray Serve is one per cluster: one HTTP proxy (host and port fixed when Serve starts) routes to every application.
`mor serve` therefore

- reads Serve's state (`GET /api/serve/applications/` on the dashboard: HTTP options, applications, prefixes),
- records itself as the owner of its application (`MOR_HOME/serve/<app>.json`: pid, process start time, cluster),
  so a later `mor serve` tells a running server from one that was killed and left its application behind,
- plans (`plan_serve`, no Ray calls): start Serve, share the running proxy, or restart it on another host/port
  when no other application needs it; conflicts (a live owner of the same application, a route prefix in use,
  a port change while other applications run) are a `ServeConflict` naming what is in the way and the fix,
- on stop removes its application and, when no other application is left, shuts Serve down, which stops the
  proxy and frees the port (`serve.delete` alone leaves the proxy listening).
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal
from urllib.parse import quote

import httpx
import psutil

from mor.cluster import auth_headers

__all__ = [
    "OwnerRecords",
    "ServeConflict",
    "ServeOwner",
    "ServePlan",
    "ServeRequest",
    "ServeState",
    "plan_serve",
    "read_serve_state",
]

_STATE_PATH = "/api/serve/applications/"


class ServeConflict(Exception):
    """Deploying would disturb what already runs on the cluster; the message says what and how to proceed."""


@dataclass(frozen=True)
class ServeState:
    """Ray Serve on a cluster: whether it runs, its proxy's host and port, and its applications' route prefixes."""

    running: bool
    host: str | None = None
    port: int | None = None
    applications: dict[str, str | None] = field(default_factory=dict)


def read_serve_state(dashboard_url: str, token: str | None, *, timeout_s: float = 30.0) -> ServeState:
    """Serve's state from the dashboard's Serve REST API; raises `httpx.HTTPError` when it does not answer."""
    url = dashboard_url if dashboard_url.startswith(("http://", "https://")) else f"http://{dashboard_url}"
    response = httpx.get(url.rstrip("/") + _STATE_PATH, headers=auth_headers(token), timeout=timeout_s)
    response.raise_for_status()
    details = response.json()
    http = details.get("http_options") or {}
    applications = {name: (app or {}).get("route_prefix") for name, app in (details.get("applications") or {}).items()}
    running = bool(details.get("controller_info")) and bool(http)
    return ServeState(running=running, host=http.get("host"), port=http.get("port"), applications=applications)


@dataclass(frozen=True)
class ServeOwner:
    """The `mor serve` process that deployed an application (one record per application and MOR_HOME)."""

    app_name: str
    pid: int
    created: float
    hostname: str
    cluster: str
    host: str
    port: int
    route_prefix: str
    model_uri: str

    @classmethod
    def this_process(
        cls, *, app_name: str, cluster: str, host: str, port: int, route_prefix: str, model_uri: str
    ) -> ServeOwner:
        """The record of the calling process."""
        return cls(
            app_name=app_name,
            pid=os.getpid(),
            created=psutil.Process().create_time(),
            hostname=socket.gethostname(),
            cluster=cluster,
            host=host,
            port=port,
            route_prefix=route_prefix,
            model_uri=model_uri,
        )

    def alive(self) -> bool:
        """Whether the owner still runs (a record from another machine counts as alive: it cannot be checked)."""
        if self.hostname != socket.gethostname():
            return True
        try:
            return abs(psutil.Process(self.pid).create_time() - self.created) < 1.0  # not a reused pid
        except (psutil.Error, OSError):
            return False

    def describe(self) -> str:
        """`mor serve (pid 12) of models:/x@champion`."""
        where = "" if self.hostname == socket.gethostname() else f" on {self.hostname}"
        return f"mor serve (pid {self.pid}{where}) of {self.model_uri}"


class OwnerRecords:
    """The owner records of one MOR_HOME (`<home>/serve/<app>.json`) and the lock serialising its `mor serve`s."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def _path(self, app_name: str) -> Path:
        return self.directory / f"{quote(app_name, safe='')}.json"

    @contextmanager
    def lock(self) -> Iterator[None]:
        """Held while one `mor serve` of this home inspects and changes Serve (deploy, stop)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        with (self.directory / ".lock").open("w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def read(self, app_name: str, cluster: str) -> ServeOwner | None:
        """The owner of `app_name` on the cluster at `cluster`, or None (no record, or one of another cluster)."""
        try:
            owner = ServeOwner(**json.loads(self._path(app_name).read_text()))
        except (FileNotFoundError, ValueError, TypeError):
            return None
        return owner if owner.cluster == cluster else None

    def write(self, owner: ServeOwner) -> None:
        """Record `owner` (replacing an earlier record of its application)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self._path(owner.app_name)
        partial = path.with_suffix(f".{os.getpid()}.tmp")
        partial.write_text(json.dumps(asdict(owner), indent=2, sort_keys=True))
        partial.replace(path)

    def remove(self, app_name: str, *, pid: int | None = None) -> None:
        """Forget the owner of `app_name` (only when it is still `pid`'s record, if `pid` is given)."""
        path = self._path(app_name)
        if pid is not None:
            try:
                if json.loads(path.read_text()).get("pid") != pid:
                    return
            except (FileNotFoundError, ValueError):
                return
        path.unlink(missing_ok=True)


@dataclass(frozen=True)
class ServeRequest:
    """What `mor serve` wants: its application at a route prefix, behind a proxy on host:port."""

    app_name: str
    route_prefix: str
    host: str
    port: int
    replace: bool = False


@dataclass(frozen=True)
class ServePlan:
    """What to do before `serve.run`: remove applications left behind, then start, share or restart the proxy."""

    action: Literal["start", "share", "restart"]
    remove: list[str]
    previous: tuple[str, int] | None = None
    notes: list[str] = field(default_factory=list)


def _same_prefix(a: str | None, b: str | None) -> bool:
    def norm(prefix: str | None) -> str | None:
        return None if prefix is None else (prefix.rstrip("/") or "/")

    return norm(a) == norm(b)


def _flag_example(app_name: str) -> str:
    other = f"{app_name}-2"
    return f"--app-name {other} --route-prefix /{other}"


def plan_serve(state: ServeState, owners: dict[str, ServeOwner], request: ServeRequest, *, me: int) -> ServePlan:
    """Decide how `request` fits the cluster's Serve (`owners`: the records of its applications that exist);
    raises `ServeConflict` when it does not, naming what is in the way and what to do."""
    notes: list[str] = []
    remove: list[str] = []
    kept: dict[str, str] = {}  # application → who it belongs to, for messages
    for name in state.applications:
        owner = owners.get(name)
        if owner is not None and owner.pid != me and not owner.alive():
            remove.append(name)
            notes.append(f"Removing application {name!r}, left by {owner.describe()}, which is no longer running.")
        elif name != request.app_name:
            kept[name] = owner.describe() if owner is not None else "not started by a running mor serve of this home"
    if request.app_name in state.applications and request.app_name not in remove:
        owner = owners.get(request.app_name)
        if not request.replace:
            if owner is not None:
                raise ServeConflict(
                    f"application {request.app_name!r} is already served on this cluster by {owner.describe()}; "
                    f"stop that server first (Ctrl-C in its terminal, or kill {owner.pid}), or serve beside it "
                    f"with {_flag_example(request.app_name)}"
                )
            raise ServeConflict(
                f"application {request.app_name!r} already runs on this cluster and no running mor serve of this "
                f"MOR_HOME owns it; pass --replace to replace it, or serve beside it with "
                f"{_flag_example(request.app_name)}"
            )
        who = owner.describe() if owner is not None else "no running mor serve"
        notes.append(f"Replacing application {request.app_name!r} (owned by {who}).")
    for name, prefix in state.applications.items():
        if name in kept and _same_prefix(prefix, request.route_prefix):
            raise ServeConflict(
                f"--route-prefix {request.route_prefix}: application {name!r} ({kept[name]}) already uses it on "
                f"this cluster; pass another prefix and app name, e.g. {_flag_example(request.app_name)}"
            )
    if not state.running:
        return ServePlan("start", remove, notes=notes)
    if (state.host, state.port) == (request.host, request.port):
        return ServePlan("share", remove, notes=notes)
    previous = (str(state.host), int(state.port or 0))
    if kept:
        listed = "; ".join(f"{name!r} at {state.applications[name]} ({who})" for name, who in kept.items())
        raise ServeConflict(
            f"Ray Serve on this cluster already listens on {previous[0]}:{previous[1]} for {listed}. One proxy "
            "serves every application of a cluster, and its host and port cannot change while they run. Either "
            f"serve beside them on that proxy (--host {previous[0]} --port {previous[1]}), or stop them first "
            f"and --port {request.port} then restarts the proxy there"
        )
    notes.append(
        f"Ray Serve's proxy listened on {previous[0]}:{previous[1]}; restarting it on {request.host}:{request.port}."
    )
    return ServePlan("restart", remove, previous=previous, notes=notes)
