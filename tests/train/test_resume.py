"""A Ray Train worker killed mid-run: the worker group restarts from the latest checkpoint and finishes."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

import psutil
import pytest

from mor.cluster import cluster_processes
from mor.pipeline.prepare import prepare_training
from mor.settings import Settings
from mor.spec import parse_spec
from mor.train import JsonlMetricsSink, TrainInputs, build_trainer, read_checkpoint

pytestmark = pytest.mark.slow

SPEC = """\
kind: train
name: resume
base_model: {builtin: tiny-llama}
data: {sources: [{synthetic: {tools: 8, trajectories: 120, seed: 4}}]}
mor:
  rank: 4
  roles: {reasoner: {routed: 2, top_k: 1}, executor: {routed: 2, top_k: 1}, summarizer: {routed: 2, top_k: 1}}
train: {max_steps: 60, batch_size: 2, max_seq_len: 512, workers: 2, checkpoint_every: 4, log_every: 2,
  max_failures: 2, lr: 1.0e-3}
"""


def _records(path: Path) -> list[dict[str, float]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _train_workers(ray_dir: Path) -> list[psutil.Process]:
    """Ray Train worker processes of this session's cluster only (other clusters may run on the machine)."""
    found = []
    for pid in cluster_processes(ray_dir):
        try:
            process = psutil.Process(pid)
            text = " ".join(process.cmdline()) + " " + process.name()
        except psutil.Error:
            continue
        if "RayTrainWorker" in text:
            found.append(process)
    return found


def test_killed_worker_resumes_from_latest_checkpoint(
    ray_connected: None, ray_settings: Settings, tmp_path: Path
) -> None:
    spec = parse_spec(SPEC)
    prepared = prepare_training(spec, tmp_path / "cache")
    log = tmp_path / "metrics.jsonl"
    trainer = build_trainer(
        spec,
        TrainInputs(prepared.base_dir, prepared.samples_path, prepared.pad_token_id),
        storage_path=tmp_path / "storage",
        run_name="resume",
        metrics_sink=JsonlMetricsSink(log),
    )
    outcome: dict[str, object] = {}
    thread = threading.Thread(target=lambda: outcome.setdefault("result", trainer.fit()), daemon=True)
    thread.start()

    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:  # wait for the first checkpoint (step 4) and a few steps past it
        steps = [record["step"] for record in _records(log)]
        if steps and max(steps) >= 6:
            break
        time.sleep(0.05)
    else:
        pytest.fail("training did not reach step 6 in time")
    # Ray Train's controller collects reported checkpoints by polling the workers: give it time to register the
    # step-4 checkpoint, or a kill right after the report restarts from scratch (as Ray documents).
    time.sleep(5)
    workers = _train_workers(ray_settings.ray_dir)
    assert workers, "found the Ray Train worker processes"
    os.kill(workers[0].pid, signal.SIGKILL)

    thread.join(timeout=400)
    assert not thread.is_alive(), "training finished after the restart"
    result = outcome["result"]
    assert result.error is None
    adapter_dir, _, state = read_checkpoint(Path(result.checkpoint.path))
    assert state.step == 60
    assert (adapter_dir / "mor_config.json").is_file()
    records = [(int(r["step"]), int(r["resumed_from_step"])) for r in _records(log)]
    resumed = {start for _, start in records if start > 0}
    assert resumed, f"a second attempt started from a checkpoint, not from step 0: {records}"
    assert min(resumed) >= 4 and min(resumed) % 4 == 0
    assert max(step for step, _ in records) == 60
    first_attempt = {int(r["step"]): r["train_seconds"] for r in _records(log) if not r["resumed_from_step"]}
    start = min(resumed)
    after = [r["train_seconds"] for r in _records(log) if r["resumed_from_step"] == start]
    assert after and min(after) > first_attempt[start], "train_seconds counts the attempt before the restart too"
    assert state.train_seconds == pytest.approx(_records(log)[-1]["train_seconds"])
