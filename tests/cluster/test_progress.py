"""Progress lines: the reporter's ETA and throttling, parsing, and following a real job on Ray."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from mor.cluster import (
    ClusterInfo,
    ProgressEvent,
    ProgressReporter,
    follow_progress,
    job_runtime_env,
    parse_progress_line,
    progress_from_logs,
)
from mor.settings import Settings


class _Clock:
    """A deterministic clock the test advances by hand."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_reporter_writes_lines_with_an_eta_per_stage() -> None:
    stream, clock = io.StringIO(), _Clock()
    reporter = ProgressReporter(stream=stream, clock=clock, wall_clock=lambda: 1.7e9)
    first = reporter.report("train", 0, 10, {"loss": 2.5})
    clock.now += 4.0
    second = reporter.report("train", 2, 10, {"loss": 2.0, "tokens_per_s": 512})
    clock.now += 1.0
    other = reporter.report("eval", 3, 6)
    assert first is not None and first.eta_s is None and first.elapsed_s == 0.0
    assert second is not None and second.eta_s == 16.0  # 2 s per step, 8 steps left
    assert second.loss == 2.0 and second.tokens_per_s == 512.0 and second.fraction == 0.2
    assert other is not None and other.eta_s is None  # a new stage starts its own clock
    lines = stream.getvalue().splitlines()
    assert len(lines) == 3
    assert [parse_progress_line(line) for line in lines] == [first, second, other]
    payload = json.loads(lines[1].split(" ", 1)[1])
    assert payload == {
        "stage": "train",
        "step": 2,
        "total": 10,
        "metrics": {"loss": 2.0, "tokens_per_s": 512.0},
        "eta_s": 16.0,
        "elapsed_s": 4.0,
        "time": 1.7e9,
    }


def test_reporter_throttles_but_keeps_stage_boundaries() -> None:
    stream, clock = io.StringIO(), _Clock()
    reporter = ProgressReporter(stream=stream, clock=clock, min_interval_s=10.0)
    written = []
    for step in range(0, 6):
        written.append(reporter.report("train", step, 5) is not None)
        clock.now += 1.0
    assert written == [True, False, False, False, False, True]
    assert [parse_progress_line(line).step for line in stream.getvalue().splitlines()] == [0, 5]


def test_parse_accepts_ray_prefixes_and_rejects_noise() -> None:
    event = ProgressEvent(stage="train", step=3, total=9, metrics={"loss": 1.25}, eta_s=6.0, elapsed_s=3.0, time=5.0)
    prefixed = "\x1b[36m(RayTrainWorker pid=4242)\x1b[0m " + event.to_line()
    assert parse_progress_line(prefixed) == event
    assert parse_progress_line("MOR_PROGRESS {not json}") is None
    assert parse_progress_line("loss 1.0") is None
    assert parse_progress_line('MOR_PROGRESS {"stage": "x"}') is None  # no step
    assert progress_from_logs(f"start\n{prefixed}\nend\n{event.to_line()}\n") == [event, event]


_JOB = """
import time
import ray
from mor.cluster import ProgressReporter

ray.init()

@ray.remote(num_cpus=0)
class Worker:
    def run(self, rank, steps):
        reporter = ProgressReporter()
        for step in range(1, steps + 1):
            time.sleep(0.1)
            reporter.report("train", step, steps, {"loss": 1.0 / step, "rank": rank})
        return steps

workers = [Worker.remote() for _ in range(2)]
print(ray.get([w.run.remote(rank, 4) for rank, w in enumerate(workers)]))
ProgressReporter().report("eval", 1, 1, {"accuracy": 0.5})
"""


def test_follow_progress_of_a_real_job_sees_every_worker(
    local_cluster: ClusterInfo, ray_settings: Settings, tmp_path: Path
) -> None:
    script = tmp_path / "progress_job.py"
    script.write_text(_JOB)
    client = local_cluster.job_client()
    job_id = client.submit(f"python {script}", runtime_env=job_runtime_env(ray_settings, local=True))
    events = list(follow_progress(client, job_id))
    assert client.status(job_id) == "SUCCEEDED"
    train = sorted((int(e.metrics["rank"]), e.step) for e in events if e.stage == "train")
    assert train == [(rank, step) for rank in (0, 1) for step in (1, 2, 3, 4)]  # nothing folded by dedup
    assert [e.metrics for e in events if e.stage == "eval"] == [{"accuracy": 0.5}]
    finals = [e for e in events if e.stage == "train" and e.step == 4]
    assert all(e.eta_s == 0.0 and e.loss == 0.25 for e in finals)
    # The same history is in the finished job's log.
    assert sorted(progress_from_logs(client.logs(job_id)), key=lambda e: e.time) == sorted(events, key=lambda e: e.time)


_TRAIN_JOB = """
import sys
import ray.train
from ray.train import RunConfig, ScalingConfig
from ray.train.torch import TorchTrainer


def train_loop():
    from mor.cluster import ProgressReporter

    reporter = ProgressReporter()
    rank = ray.train.get_context().get_world_rank()
    for step in range(1, 4):
        if rank == 0:
            reporter.report("train", step, 3, {"loss": 1.0 / step})


TorchTrainer(
    train_loop,
    scaling_config=ScalingConfig(num_workers=2),
    run_config=RunConfig(storage_path=sys.argv[1], name="progress"),
).fit()
"""


@pytest.mark.slow
def test_progress_from_ray_train_workers_reaches_the_cli(
    local_cluster: ClusterInfo, ray_settings: Settings, tmp_path: Path
) -> None:
    # Ray Train v2 patches print() in its workers; the reporter writes to stdout directly and still gets through.
    script = tmp_path / "train_job.py"
    script.write_text(_TRAIN_JOB)
    client = local_cluster.job_client()
    job_id = client.submit(
        f"python {script} {tmp_path / 'storage'}", runtime_env=job_runtime_env(ray_settings, local=True)
    )
    events = list(follow_progress(client, job_id))
    assert client.status(job_id) == "SUCCEEDED", client.logs(job_id)[-2000:]
    assert [(e.stage, e.step, e.loss) for e in events] == [("train", 1, 1.0), ("train", 2, 0.5), ("train", 3, 1 / 3)]
