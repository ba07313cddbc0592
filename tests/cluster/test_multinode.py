"""A real two-node Ray cluster on this machine: `mor job submit --address` trains on both nodes, survives losing one,
and fails fast, leaving nothing behind, where no cluster answers or the token is wrong.

The head is the embedded cluster of a "cluster home" (`ray start --head`, token auth on, its own ports and temp
dir); a second node joins it with `ray start --address` and its own resources. Both nodes have one CPU, so the
job's two Ray Train workers (one CPU each) must take one node each. Every node's processes carry a marker of their
own, so the test kills exactly the second node, and stops everything it started even when a test fails.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from mor.cluster import ClusterInfo, ensure_local_cluster, stop_local_cluster
from mor_testing import settings_for

from .ray_nodes import WorkerNode, alive_nodes, train_workers

pytestmark = pytest.mark.slow

NAME = "two-nodes"
MODEL = "two-nodes-agent"
MAX_STEPS = 20
CHECKPOINT_EVERY = 2
SPEC = f"""\
# Run with: mor job submit two-nodes.yaml --address http://<head>:8265
kind: train
name: {NAME}
base_model: {{builtin: tiny-llama}}
data: {{sources: [{{synthetic: {{tools: 8, trajectories: 60, seed: 2}}}}]}}
mor:
  rank: 4
  roles: {{reasoner: {{routed: 2, top_k: 1}}, executor: {{routed: 2, top_k: 1}}, summarizer: {{routed: 2, top_k: 1}}}}
train:
  max_steps: {MAX_STEPS}
  batch_size: 2
  max_seq_len: 512
  workers: 2
  checkpoint_every: {CHECKPOINT_EVERY}
  max_failures: 2
  log_every: 1
  lr: 1.0e-3
register: {{model_name: {MODEL}, alias: candidate}}
"""
_JOB_TIMEOUT_S = 900.0


@dataclass(frozen=True)
class TwoNodes:
    """The head (the embedded cluster of `home`) and the second node that joined it."""

    head: ClusterInfo
    head_node: str
    second: WorkerNode
    home: Path


@dataclass(frozen=True)
class NodeLossRun:
    """What was seen of one submitted train job whose second node was killed mid-training and started again."""

    exit_code: int
    output: str
    tracking_uri: str
    head_node: str
    lost_node: str
    rejoined_node: str
    workers_before: frozenset[tuple[str, int]]
    workers_after: frozenset[tuple[str, int]]
    killed: tuple[int, ...]
    committed_at_kill: int


def _client_env(home: Path, tracking_uri: str, **extra: str) -> dict[str, str]:
    """A user's shell: their own MOR_HOME, a tracking server the cluster also reaches, nothing of the session's."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "MOR_", "MLFLOW_"))}
    env.update({"MOR_HOME": str(home), "MLFLOW_TRACKING_URI": tracking_uri, "COLUMNS": "250", **extra})
    return env


def _submit_command(spec: Path, address: str) -> list[str]:
    return [sys.executable, "-m", "mor.cli.main", "job", "submit", str(spec), "--address", address]


def _files(root: Path) -> list[str]:
    return sorted(str(path.relative_to(root)) for path in root.rglob("*")) if root.exists() else []


def _committed_steps(storage: Path) -> list[int]:
    """Steps of the checkpoints Ray Train has committed (all workers reported them) for this job's runs."""
    steps: list[int] = []
    for snapshot in storage.glob(f"{NAME}-*/checkpoint_manager_snapshot.json"):
        try:
            results = json.loads(snapshot.read_text())["checkpoint_results"]
        except (OSError, ValueError, KeyError):
            continue  # being rewritten
        steps += [int(result["metrics"]["step"]) for result in results]
    return sorted(steps)


@pytest.fixture(scope="module")
def two_nodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TwoNodes]:
    """A head with one CPU and a second node with one CPU and a `second_node` resource, stopped afterwards.

    Both nodes run with MOR_HOME on the cluster's shared storage (here a directory both see), as deploy/ sets it
    on every Ray pod: checkpoints and caches live there, not in the submitting user's home.
    """
    home = tmp_path_factory.mktemp("cluster-home")
    settings = settings_for(home)
    second: WorkerNode | None = None
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("MOR_HOME", str(home))  # inherited by the head's processes and so by job drivers
            # Ray Train's controller collects reports (and commits checkpoints) every 2 s by default; sooner, the
            # node can be lost right after the first commit even where 20 steps take a few seconds.
            patch.setenv("RAY_TRAIN_HEALTH_CHECK_INTERVAL_S", "0.5")
            for key in ("MLFLOW_TRACKING_URI", "MOR_DATABASE_URL", "MOR_DATASETS_DIR", "MOR_BENCHMARKS_DIR"):
                patch.delenv(key, raising=False)
            head = ensure_local_cluster(settings, num_cpus=1)
        (head_node,) = [node["node_id"] for node in alive_nodes(head) if node["is_head_node"]]
        second = WorkerNode(
            home=tmp_path_factory.mktemp("second-node"),
            head=head,
            num_cpus=1,
            resources={"second_node": 1.0},
            env={"MOR_HOME": str(home)},
        )
        second.start()
        yield TwoNodes(head=head, head_node=head_node, second=second, home=home)
    finally:
        if second is not None:
            second.stop()
        stop_local_cluster(settings)


@pytest.fixture(scope="module")
def node_loss_run(two_nodes: TwoNodes, tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeLossRun]:
    """Submit the train job with the real CLI, kill the second node once a checkpoint is committed and the workers
    run on both nodes, start the node again, and follow the job to its end."""
    head, second = two_nodes.head, two_nodes.second
    assert head.token_path is not None and second.node_id is not None
    work = tmp_path_factory.mktemp("submitter")
    spec = work / "two-nodes.yaml"
    spec.write_text(SPEC)
    tracking_uri = f"sqlite:///{work / 'tracking' / 'mlflow.db'}"
    (work / "tracking").mkdir()
    log_path = work / "submit.log"
    env = _client_env(work / "home", tracking_uri, RAY_AUTH_TOKEN_PATH=str(head.token_path))
    storage = two_nodes.home / "storage"
    lost_node = second.node_id
    with log_path.open("w") as log:
        submit = subprocess.Popen(
            _submit_command(spec, head.dashboard_url), env=env, stdout=log, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + _JOB_TIMEOUT_S
        before: set[tuple[str, int]] = set()
        while True:
            assert submit.poll() is None, f"the job ended before the node was lost:\n{log_path.read_text()}"
            assert time.monotonic() < deadline, f"no committed checkpoint on two nodes:\n{log_path.read_text()}"
            workers = set(train_workers(head))
            before |= workers
            committed = [step for step in _committed_steps(storage) if step < MAX_STEPS]
            if committed and {node for node, _ in workers} == {two_nodes.head_node, lost_node}:
                break
            time.sleep(0.3)
        killed = second.kill()
        committed_at_kill = max(committed)
        while lost_node in {node["node_id"] for node in alive_nodes(head)}:
            assert time.monotonic() < deadline, "the head never noticed the lost node"
            time.sleep(0.5)
        rejoined_node = second.start()
        after: set[tuple[str, int]] = set()
        while submit.poll() is None:
            assert time.monotonic() < deadline, f"the job did not end:\n{log_path.read_text()}"
            after |= set(train_workers(head))
            time.sleep(0.5)
        yield NodeLossRun(
            exit_code=submit.returncode,
            output=log_path.read_text(),
            tracking_uri=tracking_uri,
            head_node=two_nodes.head_node,
            lost_node=lost_node,
            rejoined_node=rejoined_node,
            workers_before=frozenset(before),
            workers_after=frozenset(after),
            killed=tuple(killed),
            committed_at_kill=committed_at_kill,
        )
    finally:
        if submit.poll() is None:
            submit.kill()
            submit.wait()


def test_no_answer_fails_fast_and_leaves_nothing_behind(tmp_path: Path) -> None:
    """Three ways nothing answers: a closed port, a host that drops connection attempts (a listener whose
    backlog is full), and one that accepts but never answers. Each fails after one attempt with the reason."""
    home = tmp_path / "home"
    (home / "notes").mkdir(parents=True)
    (home / "notes" / "kept.txt").write_text("a file of the user's")
    before = _files(home)
    tracking = tmp_path / "tracking"
    spec = tmp_path / "two-nodes.yaml"
    spec.write_text(SPEC)
    env = _client_env(home, f"sqlite:///{tracking / 'mlflow.db'}")

    closed = socket.socket()  # bound, never listening: connections are refused, and no one else takes the port
    drops = socket.socket()
    drops.bind(("127.0.0.1", 0))
    drops.listen(0)
    fillers = [socket.socket() for _ in range(3)]  # never accepted: the full backlog drops further SYNs
    for filler in fillers:
        filler.setblocking(False)
        filler.connect_ex(drops.getsockname())
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    accepted: list[socket.socket] = []

    def _accept_and_say_nothing() -> None:
        while True:
            try:
                accepted.append(silent.accept()[0])
            except OSError:  # closed at the end of the test
                return

    threading.Thread(target=_accept_and_say_nothing, daemon=True).start()
    try:
        closed.bind(("127.0.0.1", 0))
        cases = {
            closed.getsockname()[1]: "Connection refused",
            drops.getsockname()[1]: "nothing accepted a connection within 3 s",
            silent.getsockname()[1]: "it accepted the connection but sent no answer within 10 s",
        }
        for port, reason in cases.items():
            address = f"http://127.0.0.1:{port}"
            result = subprocess.run(
                _submit_command(spec, address), env=env, capture_output=True, text=True, timeout=120, check=False
            )
            output = " ".join((result.stdout + result.stderr).split())
            assert result.returncode == 1, output
            assert f"Error: address: no Ray job server answers at {address} (" in output
            assert reason in output
            assert "Submitted job" not in output
        assert len(accepted) == 1, "one attempt, no retries"
    finally:
        for sock in (closed, drops, silent, *fillers, *accepted):
            sock.close()
    assert _files(home) == before
    assert not tracking.exists(), "no MLflow store was created"


def test_a_wrong_token_fails_fast_and_leaves_nothing_behind(two_nodes: TwoNodes, tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    tracking = tmp_path / "tracking"
    spec = tmp_path / "wrong-token.yaml"
    spec.write_text(SPEC.replace(f"name: {NAME}", "name: wrong-token"))
    env = _client_env(home, f"sqlite:///{tracking / 'mlflow.db'}", RAY_AUTH_TOKEN="not-the-token")
    address = two_nodes.head.dashboard_url
    result = subprocess.run(
        _submit_command(spec, address), env=env, capture_output=True, text=True, timeout=120, check=False
    )
    output = " ".join((result.stdout + result.stderr).split())
    assert result.returncode == 1, output
    assert re.search(rf"Error: token: the Ray cluster at {address} answered 40[13]", output), output
    assert "the token sent is wrong; fix: set RAY_AUTH_TOKEN or RAY_AUTH_TOKEN_PATH" in output
    assert "Submitted job" not in output
    assert _files(home) == [] and not tracking.exists()
    jobs = two_nodes.head.job_client().list(metadata={"mor.job": "wrong-token"})
    assert jobs == []


def test_the_job_trained_on_both_nodes_and_again_after_one_was_lost(node_loss_run: NodeLossRun) -> None:
    run = node_loss_run
    assert {node for node, _ in run.workers_before} == {run.head_node, run.lost_node}
    lost_workers = {pid for node, pid in run.workers_before if node == run.lost_node}
    assert lost_workers and lost_workers <= set(run.killed), "the lost node's Train worker was killed with it"
    head_workers = {pid for node, pid in run.workers_before if node == run.head_node}
    assert not head_workers & set(run.killed), "nothing of the head was killed"
    assert run.rejoined_node not in (run.head_node, run.lost_node)
    assert {node for node, _ in run.workers_after} == {run.head_node, run.rejoined_node}


def test_training_resumed_from_the_latest_checkpoint_and_reached_every_step(node_loss_run: NodeLossRun) -> None:
    from mlflow.tracking import MlflowClient

    run = node_loss_run
    assert run.exit_code == 0, run.output
    assert re.search(rf"training\s+{MAX_STEPS} steps in", run.output), run.output
    client = MlflowClient(run.tracking_uri)
    version = client.get_model_version_by_alias(MODEL, "candidate")
    history = client.get_metric_history(version.run_id, "resumed_from_step")
    by_attempt: dict[int, list[int]] = {}
    for metric in history:
        by_attempt.setdefault(int(metric.value), []).append(metric.step)
    # Rank 0 logs (buffered): the first attempt's last steps may be lost with its node, the resumed ones are not.
    resumed = max(by_attempt)
    assert set(by_attempt) <= {0, resumed}, by_attempt
    assert run.committed_at_kill <= resumed < MAX_STEPS and resumed % CHECKPOINT_EVERY == 0, by_attempt
    assert sorted(by_attempt[resumed]) == list(range(resumed + 1, MAX_STEPS + 1)), "on from the checkpoint, to the end"
    steps = client.get_metric_history(version.run_id, "step")
    assert max(metric.value for metric in steps) == MAX_STEPS


def test_exactly_one_complete_version_is_registered(node_loss_run: NodeLossRun) -> None:
    from mlflow.tracking import MlflowClient

    run = node_loss_run
    assert f"models:/{MODEL}/1 " in run.output and f"Job mor-{NAME}-" in run.output, run.output
    client = MlflowClient(run.tracking_uri)
    versions = client.search_model_versions(f"name='{MODEL}'")
    assert [(str(v.version), v.status) for v in versions] == [("1", "READY")]
    assert str(client.get_model_version_by_alias(MODEL, "candidate").version) == "1"
    training = client.get_run(versions[0].run_id)
    assert training.info.status == "FINISHED"
    assert training.data.params["train.max_steps"] == str(MAX_STEPS)
    experiment = client.get_experiment_by_name(NAME)
    assert [r.info.status for r in client.search_runs([experiment.experiment_id])] == ["FINISHED"]
