"""`mor serve`'s calls to Ray Serve: check the port, deploy its application as `plan_serve` decides, undeploy it.

The caller is a Ray driver of the cluster (`ray.init` done). `check_port` needs no Ray and runs before a cluster is
even started; the port checks only apply to the embedded cluster (`ServeCluster.ray_dir` set), whose proxy listens
on this machine.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from mor.serve.lifecycle import (
    OwnerRecords,
    ServeConflict,
    ServeOwner,
    ServeRequest,
    ServeState,
    plan_serve,
    read_serve_state,
)
from mor.serve.ports import port_holders, wait_port_free

__all__ = ["ServeCluster", "check_port", "deploy", "undeploy"]

_PORT_RELEASE_S = 30.0

Report = Callable[[str], None]


@dataclass(frozen=True)
class ServeCluster:
    """The cluster `mor serve` deploys on: its address, its dashboard (Serve's REST API) and token, and for the
    embedded cluster of this MOR_HOME its `ray_dir` (the marker its processes carry)."""

    address: str
    dashboard_url: str
    token: str | None
    ray_dir: Path | None = None


def _free_port_example(host: str) -> int | None:
    try:
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
            probe.bind((host, 0))
            return int(probe.getsockname()[1])
    except OSError:
        return None


def check_port(host: str, port: int, own_dir: Path | None) -> None:
    """Raise `ServeConflict` when anything but the cluster of `own_dir` listens where a proxy on host:port would."""
    foreign = [holder for holder in port_holders(host, port) if own_dir is None or holder.cluster_dir != own_dir]
    if not foreign:
        return
    held = "; ".join(holder.describe() for holder in foreign)
    fixes = []
    if any(holder.cluster_dir is not None for holder in foreign):
        homes = sorted({str(h.cluster_dir.parent) for h in foreign if h.cluster_dir is not None})
        fixes.append(
            "stop that server (Ctrl-C in its terminal), or its whole cluster with "
            + " / ".join(f"`MOR_HOME={home} mor cluster stop`" for home in homes)
        )
    else:
        fixes.append("stop that process")
    example = _free_port_example(host)
    fixes.append(f"pick another port{f' (e.g. --port {example}, free now)' if example else ''}")
    raise ServeConflict(f"--port {port}: {host}:{port} is already in use by {held}; {', or '.join(fixes)}")


def _await_own_port(cluster: ServeCluster, host: str, port: int) -> None:
    """Before starting a proxy: the port must be free, or held only by this cluster's processes on their way out."""
    if cluster.ray_dir is None:
        return
    check_port(host, port, cluster.ray_dir)
    if not wait_port_free(host, port, _PORT_RELEASE_S):
        raise ServeConflict(
            f"--port {port}: a process of this MOR_HOME's Ray cluster still listens on {host}:{port} after "
            f"{_PORT_RELEASE_S:.0f} s; run `mor cluster stop` and retry"
        )


def _owners(records: OwnerRecords, state: ServeState, cluster: ServeCluster) -> dict[str, ServeOwner]:
    found = {name: records.read(name, cluster.address) for name in state.applications}
    return {name: owner for name, owner in found.items() if owner is not None}


def deploy(
    app: Any,
    request: ServeRequest,
    *,
    cluster: ServeCluster,
    records: OwnerRecords,
    model_uri: str,
    report: Report,
) -> ServeOwner:
    """Deploy `app` (`build_app(...)`) as `request` says, after removing applications left by servers that are
    gone and starting or restarting the proxy as needed; raises `ServeConflict` before changing anything when
    the request does not fit."""
    from ray import serve

    me = os.getpid()
    with records.lock():
        state = read_serve_state(cluster.dashboard_url, cluster.token)
        plan = plan_serve(state, _owners(records, state, cluster), request, me=me)
        if plan.action in ("start", "restart") and cluster.ray_dir is not None:
            check_port(request.host, request.port, cluster.ray_dir)  # again: someone may have taken it meanwhile
        for note in plan.notes:
            report(note)
        if plan.action == "restart":
            serve.shutdown()  # stops the controller and the proxy (every application left here is stale)
            if cluster.ray_dir is not None and plan.previous is not None:
                wait_port_free(plan.previous[0], plan.previous[1], _PORT_RELEASE_S)
        else:
            for name in plan.remove:
                serve.delete(name)
        for name in plan.remove:
            records.remove(name)
        if plan.action in ("start", "restart"):
            _await_own_port(cluster, request.host, request.port)
            serve.start(http_options={"host": request.host, "port": request.port})
        owner = ServeOwner.this_process(
            app_name=request.app_name,
            cluster=cluster.address,
            host=request.host,
            port=request.port,
            route_prefix=request.route_prefix,
            model_uri=model_uri,
        )
        records.write(owner)  # before serve.run: a server killed while deploying is then recognised as gone
        serve.run(app, name=request.app_name, route_prefix=request.route_prefix, blocking=False)
    return owner


def undeploy(request: ServeRequest, *, cluster: ServeCluster, records: OwnerRecords, report: Report) -> None:
    """Remove this process's application; when no other application needs Ray Serve, shut Serve down, which
    stops its proxy and frees the port (waited for on the embedded cluster)."""
    from ray import serve

    me = os.getpid()
    name = request.app_name
    with records.lock():
        owner = records.read(name, cluster.address)
        if owner is not None and owner.pid != me:
            report(f"Application {name!r} now belongs to {owner.describe()}; leaving it running.")
            return
        try:
            state = read_serve_state(cluster.dashboard_url, cluster.token)
        except httpx.HTTPError as error:
            report(f"Could not read Ray Serve's state ({error}); removing the application only.")
            serve.delete(name)
            records.remove(name, pid=me)
            return
        owners = _owners(records, state, cluster)
        others = [
            other for other in state.applications if other != name and (other not in owners or owners[other].alive())
        ]
        if others:
            if name in state.applications:
                serve.delete(name)
            records.remove(name, pid=me)
            report(
                f"Removed {name!r}; Ray Serve keeps listening on {state.host}:{state.port} for "
                + ", ".join(repr(other) for other in others)
                + "."
            )
            return
        serve.shutdown()
        records.remove(name, pid=me)
        for other in state.applications:
            if other != name and other in owners:
                records.remove(other, pid=owners[other].pid)
        if cluster.ray_dir is None or state.port is None:
            report("Removed the application and shut Ray Serve down.")
        elif wait_port_free(str(state.host), state.port, _PORT_RELEASE_S):
            report(f"Removed the application and shut Ray Serve down; {state.host}:{state.port} is free.")
        else:
            held = "; ".join(h.describe() for h in port_holders(str(state.host), state.port))
            report(f"Shut Ray Serve down, but {state.host}:{state.port} is still held by {held}.")
