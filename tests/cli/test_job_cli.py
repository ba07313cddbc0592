"""`mor job status | logs | list` through the Typer app, on the session's real Ray cluster: jobs that write what a
train job writes (progress and summary lines, colour codes, Ray's multi-cluster noise) are followed, listed and
read back."""

from __future__ import annotations

import json
import sys
import time
import uuid
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from mor.cli.joblog import clean_log
from mor.cli.main import app
from mor.cluster import ClusterInfo, JobClient, ProgressEvent
from mor.registry import JOB_ID_TAG, TrackingSession, tracking_client
from mor.settings import Settings

NOISE_WARNING = (
    "2025-06-01 02:00:00,000\tWARNING services.py:443 -- Found multiple active Ray instances: "
    "{'127.0.0.1:6379', '127.0.0.1:6380'}. Connecting to latest cluster at 127.0.0.1:6380."
)
NOISE_TRACEBACK = [
    "Traceback (most recent call last):",
    '  File "/venv/lib/python3.11/site-packages/ray/_private/services.py", line 760, in canonicalize_bootstrap',
    "    raise ConnectionError(",
    "ConnectionError: Found multiple active Ray instances: {'127.0.0.1:6379', '127.0.0.1:6380'}. Please specify "
    "the one to connect to by setting the `--address` flag or `RAY_ADDRESS` environment variable.",
]
REAL_TRACEBACK = [
    "Traceback (most recent call last):",
    '  File "step.py", line 3, in <module>',
    "ValueError: a real problem the user must see",
]


def _summary_line() -> str:
    from mor.pipeline.run import JobSummary

    summary = JobSummary(
        job_name="tiny",
        mlflow_run_id="0123456789abcdef0123456789abcdef",
        tracking_uri="sqlite:////home/user/.mor/mlflow.db",
        steps=6,
        train_seconds=1.5,
        final_loss=0.5,
        model_uri="models:/tiny-agent/3",
        alias_uri="models:/tiny-agent@candidate",
        evals=[
            {
                "suite": "synthetic",
                "metrics": {"accuracy": 0.35, "items": 100.0},
                "items": 100,
                "run_id": 4,
                "baseline": {"accuracy": 0.0, "run_id": 5, "reused": False},
                "verdict": "above_untrained",
            }
        ],
    )
    return summary.to_line()


def _progress(stage: str, step: int, total: int, eta_s: float | None, **metrics: float) -> str:
    return ProgressEvent(stage=stage, step=step, total=total, metrics=metrics, eta_s=eta_s).to_line()


FINISHED_LOG = [
    "Starting job tiny",
    "\x1b[32mtraining on 2 workers\x1b[0m",
    _progress("data", 1, 1, 0.0),
    "SLEEP 1",
    _progress("train", 3, 6, 1.0, loss=0.8, tokens_per_s=1200.0),
    NOISE_WARNING,
    *NOISE_TRACEBACK,
    *[f"(RayTrainWorker pid=1234, ip=127.0.0.1) {line}" for line in NOISE_TRACEBACK],
    "SLEEP 1",
    "(RayTrainWorker pid=1234, ip=127.0.0.1) epoch 1 done",
    *REAL_TRACEBACK,
    _progress("train", 6, 6, 0.0, loss=0.5, tokens_per_s=1300.0),
    _summary_line(),
    "Job done",
]
RUNNING_LOG = [_progress("data", 1, 1, 0.0), _progress("train", 2, 10, 125.0, loss=1.5), "SLEEP 300"]


def test_clean_log_drops_the_protocol_colour_and_ray_noise_only() -> None:
    cleaned = list(clean_log(line for line in FINISHED_LOG if not line.startswith("SLEEP")))
    assert cleaned == [
        "Starting job tiny",
        "training on 2 workers",
        "(RayTrainWorker pid=1234, ip=127.0.0.1) epoch 1 done",
        *REAL_TRACEBACK,
        "Job done",
    ]
    cut = ["before", "Traceback (most recent call last):", '  File "x.py", line 1']
    assert list(clean_log(cut)) == cut  # a traceback the log ends in is shown


def _submit(client: JobClient, tmp_path: Path, lines: list[str]) -> str:
    """A job that prints `lines` (a `SLEEP n` line waits n seconds), registered as a mor train job."""
    log = tmp_path / f"log-{uuid.uuid4().hex[:6]}.txt"
    log.write_text("\n".join(lines) + "\n")
    script = tmp_path / "print_log.py"
    script.write_text(
        "import sys, time\n"
        "for line in open(sys.argv[1]):\n"
        "    if line.startswith('SLEEP '):\n"
        "        time.sleep(float(line.split()[1]))\n"
        "    else:\n"
        "        print(line, end='', flush=True)\n"
    )
    job_id = f"mor-tiny-{uuid.uuid4().hex[:8]}"
    return client.submit(
        f"{sys.executable} {script} {log}",
        metadata={"mor.job": "tiny", "mor.kind": "train"},
        submission_id=job_id,
    )


@pytest.fixture
def ray_home(
    local_cluster: ClusterInfo, ray_settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Settings:
    """The session cluster's MOR_HOME (so the commands find that cluster), with MLflow in tmp."""
    settings = ray_settings.model_copy(update={"mlflow_tracking_uri": f"sqlite:///{tmp_path / 'mlflow.db'}"})
    monkeypatch.setenv("MOR_HOME", str(settings.home))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", settings.tracking_uri)
    monkeypatch.setenv("COLUMNS", "250")
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    return settings


def _mor(*args: str) -> Result:
    return CliRunner().invoke(app, ["job", *args])


def _flat(result: Result) -> str:
    return " ".join(result.output.split())


@pytest.mark.slow
def test_status_logs_and_list_of_jobs(ray_home: Settings, local_cluster: ClusterInfo, tmp_path: Path) -> None:
    client = local_cluster.job_client()
    finished = _submit(client, tmp_path, FINISHED_LOG)

    followed = _mor("status", finished, "--follow")  # live progress until the end, then the summary
    assert followed.exit_code == 0, followed.output
    text = _flat(followed)
    assert f"job {finished} status SUCCEEDED spec train job tiny" in text
    assert "registered models:/tiny-agent/3 (alias models:/tiny-agent@candidate)" in text
    assert "eval synthetic accuracy 0.350 (100 items, SQL run 4)" in text
    assert "MLflow run 0123456789abcdef0123456789abcdef" in text
    assert "promote mor model promote tiny-agent 3 --alias champion" in text
    assert "serve mor serve models:/tiny-agent@champion" in text
    assert "MOR_PROGRESS" not in text and "MOR_SUMMARY" not in text

    data = json.loads(_mor("status", finished, "--json").output)
    assert (data["id"], data["status"], data["job"], data["kind"]) == (finished, "SUCCEEDED", "tiny", "train")
    assert data["summary"]["model_uri"] == "models:/tiny-agent/3"
    assert [(p["stage"], p["step"], p["total"]) for p in data["progress"]] == [("data", 1, 1), ("train", 6, 6)]

    logs = _mor("logs", finished)
    assert logs.exit_code == 0, logs.output
    lines = logs.output.splitlines()
    start = lines.index("Starting job tiny")  # after Ray's own lines (runtime env, entrypoint)
    assert lines[start + 1] == "training on 2 workers" and lines[-1] == "Job done"
    assert REAL_TRACEBACK[-1] in lines and "Found multiple" not in logs.output
    assert "MOR_PROGRESS" not in logs.output and "MOR_SUMMARY" not in logs.output and "\x1b[" not in logs.output
    raw = _mor("logs", finished, "--raw").output
    assert "\x1b[32mtraining on 2 workers" in raw and raw.count("Found multiple active Ray instances") == 3
    assert "MOR_PROGRESS {" in raw and "MOR_SUMMARY {" in raw

    running = _submit(client, tmp_path, RUNNING_LOG)
    try:
        deadline = time.monotonic() + 60
        while "train" not in client.logs(running) and time.monotonic() < deadline:
            time.sleep(0.5)
        # The MLflow run the job would have started; `mor job stop` ends it (KILLED), so it is not ended here.
        session = TrackingSession.start(ray_home, experiment="tiny", tags={JOB_ID_TAG: running})
        status = _mor("status", running)
        assert status.exit_code == 0, status.output
        text = _flat(status)
        assert f"job {running} status RUNNING" in text
        assert f"MLflow run {session.run_id} (RUNNING)" in text
        assert "train 2/10 loss 1.500" in text and "ETA 2:05" in text
        assert "data 1/1" in text

        listed = _mor("list")
        assert listed.exit_code == 0, listed.output
        ids = [line.split()[0] for line in listed.output.splitlines() if line.startswith("mor-tiny-")]
        assert ids[:2] == [running, finished]  # newest first, ids whole
        assert "…" not in listed.output
        entries = json.loads(_mor("list", "--json", "--limit", "2").output)
        assert [(e["id"], e["status"]) for e in entries] == [(running, "RUNNING"), (finished, "SUCCEEDED")]

        stopped = _mor("stop", running)
        assert stopped.exit_code == 0 and f"MLflow run(s) {session.run_id} marked KILLED" in _flat(stopped)
        assert tracking_client(ray_home).get_run(session.run_id).info.status == "KILLED"
        assert "status STOPPED" in _flat(_mor("status", running))
    finally:
        client.stop(running)


def test_an_unknown_job_or_no_cluster_is_explained(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MOR_HOME", str(tmp_path / "empty"))
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    for args in (["list"], ["status", "mor-x"], ["logs", "mor-x"]):
        result = _mor(*args)
        assert result.exit_code == 1 and "no embedded Ray cluster is running for MOR_HOME=" in _flat(result)
