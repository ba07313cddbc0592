"""`plan_serve` and the owner records: how `mor serve` fits beside what a cluster's Ray Serve already runs (no Ray:
the state is what the dashboard would report, the owners are real processes, running or finished)."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from mor.serve.lifecycle import OwnerRecords, ServeConflict, ServeOwner, ServeRequest, ServeState, plan_serve

CLUSTER = "127.0.0.1:6379"


def _owner(app: str, *, alive: bool, prefix: str = "/", port: int = 8000) -> ServeOwner:
    me = ServeOwner.this_process(
        app_name=app, cluster=CLUSTER, host="127.0.0.1", port=port, route_prefix=prefix, model_uri=f"models:/{app}@c"
    )
    if alive:
        return me
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return replace(me, pid=int(finished.stdout))  # a process that has exited


def _request(**fields: object) -> ServeRequest:
    values: dict = {"app_name": "mor-agent", "route_prefix": "/", "host": "127.0.0.1", "port": 8000}
    values.update(fields)
    return ServeRequest(**values)


def test_owner_liveness_follows_the_process() -> None:
    assert _owner("a", alive=True).alive()
    assert not _owner("a", alive=False).alive()
    reused = replace(_owner("a", alive=True), created=1.0)  # same pid, another process start: a reused pid
    assert not reused.alive()


def test_no_serve_starts_it_and_the_same_proxy_is_shared() -> None:
    assert plan_serve(ServeState(running=False), {}, _request(), me=os.getpid()).action == "start"
    state = ServeState(running=True, host="127.0.0.1", port=8000, applications={"other": "/other"})
    plan = plan_serve(state, {"other": _owner("other", alive=True, prefix="/other")}, _request(), me=-1)
    assert plan.action == "share" and plan.remove == [] and plan.notes == []


def test_port_change_restarts_the_proxy_when_only_stale_applications_are_left() -> None:
    state = ServeState(running=True, host="127.0.0.1", port=8000, applications={"mor-agent": "/", "old": "/old"})
    owners = {"mor-agent": _owner("mor-agent", alive=False), "old": _owner("old", alive=False, prefix="/old")}
    plan = plan_serve(state, owners, _request(port=8001), me=-1)
    assert plan.action == "restart" and plan.previous == ("127.0.0.1", 8000)
    assert sorted(plan.remove) == ["mor-agent", "old"]
    assert "restarting it on 127.0.0.1:8001" in plan.notes[-1]
    assert any("Removing application 'old'" in note and "no longer running" in note for note in plan.notes)


def test_port_change_while_others_run_fails_with_what_to_do() -> None:
    state = ServeState(running=True, host="127.0.0.1", port=8000, applications={"a": "/a", "b": "/b"})
    owners = {"a": _owner("a", alive=True, prefix="/a")}  # b has no record: someone else's
    with pytest.raises(ServeConflict) as caught:
        plan_serve(state, owners, _request(port=9000, app_name="c", route_prefix="/c"), me=-1)
    message = str(caught.value)
    assert "already listens on 127.0.0.1:8000 for 'a' at /a (mor serve (pid" in message
    assert "'b' at /b (not started by a running mor serve of this home)" in message
    assert "(--host 127.0.0.1 --port 8000)" in message and "--port 9000 then restarts the proxy" in message


def test_an_application_served_by_a_live_mor_serve_is_not_taken_over() -> None:
    state = ServeState(running=True, host="127.0.0.1", port=8000, applications={"mor-agent": "/"})
    live = {"mor-agent": _owner("mor-agent", alive=True)}
    with pytest.raises(ServeConflict, match=r"already served on this cluster by mor serve \(pid \d+\)") as caught:
        plan_serve(state, live, _request(), me=-1)
    assert "--app-name mor-agent-2 --route-prefix /mor-agent-2" in str(caught.value)
    with pytest.raises(ServeConflict, match="no running mor serve of this MOR_HOME owns it; pass --replace"):
        plan_serve(state, {}, _request(), me=-1)
    plan = plan_serve(state, live, _request(replace=True), me=-1)
    assert plan.action == "share" and plan.remove == [] and "Replacing application 'mor-agent'" in plan.notes[0]


def test_a_route_prefix_in_use_is_refused() -> None:
    state = ServeState(running=True, host="127.0.0.1", port=8000, applications={"a": "/agent"})
    with pytest.raises(ServeConflict, match=r"--route-prefix /agent/: application 'a' \(not started by"):
        plan_serve(state, {}, _request(app_name="b", route_prefix="/agent/"), me=-1)
    stale = {"a": _owner("a", alive=False, prefix="/agent")}  # its prefix is free once it is removed
    assert plan_serve(state, stale, _request(app_name="b", route_prefix="/agent"), me=-1).remove == ["a"]


def test_owner_records(tmp_path: Path) -> None:
    records = OwnerRecords(tmp_path / "serve")
    owner = _owner("team/agent one", alive=True)
    with records.lock():
        records.write(owner)
    assert records.read("team/agent one", CLUSTER) == owner
    assert records.read("team/agent one", "127.0.0.1:1") is None  # a record of another cluster
    records.remove("team/agent one", pid=owner.pid + 1)  # someone else's pid: kept
    assert records.read("team/agent one", CLUSTER) == owner
    records.remove("team/agent one", pid=owner.pid)
    assert records.read("team/agent one", CLUSTER) is None
    assert [p.name for p in (tmp_path / "serve").iterdir()] == [".lock"]
