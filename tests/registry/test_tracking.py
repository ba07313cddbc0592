"""TrackingSession against a real MLflow SQLite store."""

from __future__ import annotations

import json

import pytest

from mor.registry import (
    JOB_ID_TAG,
    RegistryError,
    TrackingSession,
    end_open_runs,
    tracking_client,
)
from mor.settings import Settings

SPEC = {
    "name": "quickstart",
    "mor": {"rank": 16, "roles": {"executor": {"routed": 4, "top_k": 3}}},
    "train": {"lr": 5.0e-5, "workers": 2},
}


def test_run_logs_spec_params_artifact_and_finishes(mlflow_settings: Settings, unique_name: str) -> None:
    with TrackingSession.start(mlflow_settings, experiment=unique_name, run_name="r1") as session:
        logged = session.log_spec(SPEC, spec_text="name: quickstart\n")
        run_id = session.run_id
    client = tracking_client(mlflow_settings)
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert run.info.run_name == "r1"
    assert run.data.params == logged
    assert run.data.params["mor.roles.executor.top_k"] == "3"
    assert run.data.params["train.lr"] == "5e-05"
    assert [item.path for item in client.list_artifacts(run_id)] == ["spec.yaml"]
    spec_path = client.download_artifacts(run_id, "spec.yaml")
    assert open(spec_path).read() == "name: quickstart\n"
    assert client.get_experiment(run.info.experiment_id).name == unique_name


def test_metrics_are_batched_and_all_steps_kept(mlflow_settings: Settings, unique_name: str) -> None:
    session = TrackingSession.start(mlflow_settings, experiment=unique_name, flush_interval_s=3600)
    for step in range(600):  # 1200 metric values: one automatic batch of 1000, the rest at end()
        session.log_metrics({"loss": 10.0 / (step + 1), "router_load/reasoner/0": step % 7}, step=step)
    client = tracking_client(mlflow_settings)
    assert len(client.get_metric_history(session.run_id, "loss")) == 500  # first batch: 1000 values
    session.end()
    history = client.get_metric_history(session.run_id, "loss")
    assert sorted(m.step for m in history) == list(range(600))
    assert {m.step: m.value for m in history}[9] == pytest.approx(1.0)
    loads = client.get_metric_history(session.run_id, "router_load/reasoner/0")
    assert {m.step: m.value for m in loads}[13] == 6.0
    assert client.get_run(session.run_id).info.status == "FINISHED"


def test_failure_inside_the_block_marks_the_run_failed(mlflow_settings: Settings, unique_name: str) -> None:
    with pytest.raises(ValueError, match="boom"):
        with TrackingSession.start(mlflow_settings, experiment=unique_name, flush_interval_s=3600) as session:
            session.log_metrics({"loss": 1.5}, step=0)
            raise ValueError("boom")
    client = tracking_client(mlflow_settings)
    assert client.get_run(session.run_id).info.status == "FAILED"
    assert [m.value for m in client.get_metric_history(session.run_id, "loss")] == [1.5]


def test_interrupt_marks_the_run_killed(mlflow_settings: Settings, unique_name: str) -> None:
    with pytest.raises(KeyboardInterrupt):
        with TrackingSession.start(mlflow_settings, experiment=unique_name) as session:
            raise KeyboardInterrupt
    assert tracking_client(mlflow_settings).get_run(session.run_id).info.status == "KILLED"


def test_attach_continues_a_running_run_and_refuses_a_finished_one(mlflow_settings: Settings, unique_name: str) -> None:
    owner = TrackingSession.start(mlflow_settings, experiment=unique_name)
    worker = TrackingSession.attach(mlflow_settings, owner.run_id)
    worker.log_metrics({"ce": 2.0}, step=3)
    worker.flush()
    owner.end("FINISHED")
    client = tracking_client(mlflow_settings)
    assert [(m.step, m.value) for m in client.get_metric_history(owner.run_id, "ce")] == [(3, 2.0)]
    with pytest.raises(RegistryError, match="FINISHED, must be RUNNING"):
        TrackingSession.attach(mlflow_settings, owner.run_id)
    with pytest.raises(RegistryError, match="run_id: 'nope'"):
        TrackingSession.attach(mlflow_settings, "nope")


def test_end_is_idempotent_and_checks_status(mlflow_settings: Settings, unique_name: str) -> None:
    session = TrackingSession.start(mlflow_settings, experiment=unique_name)
    with pytest.raises(RegistryError, match="status: got 'DONE'"):
        session.end("DONE")  # type: ignore[arg-type]
    session.end("FAILED")
    session.end("FINISHED")  # no effect: already ended
    assert tracking_client(mlflow_settings).get_run(session.run_id).info.status == "FAILED"


def test_end_open_runs_closes_runs_of_a_dead_job(mlflow_settings: Settings, unique_name: str) -> None:
    orphan = TrackingSession.start(mlflow_settings, experiment=unique_name, tags={JOB_ID_TAG: unique_name})
    other = TrackingSession.start(mlflow_settings, experiment=unique_name, tags={JOB_ID_TAG: "another-job"})
    assert end_open_runs(mlflow_settings, job_id=unique_name, status="KILLED") == [orphan.run_id]
    client = tracking_client(mlflow_settings)
    assert client.get_run(orphan.run_id).info.status == "KILLED"
    assert client.get_run(other.run_id).info.status == "RUNNING"
    other.end()


def test_a_summary_is_logged_under_its_prefix_without_nan(mlflow_settings: Settings, unique_name: str) -> None:
    with TrackingSession.start(mlflow_settings, experiment=unique_name) as session:
        logged = session.log_summary(
            {"function_accuracy": 0.75, "answer_accuracy": 0.5, "empty_category": float("nan")},
            prefix="eval/synthetic",
        )
    assert logged == {"eval/synthetic/function_accuracy": 0.75, "eval/synthetic/answer_accuracy": 0.5}
    metrics = tracking_client(mlflow_settings).get_run(session.run_id).data.metrics
    assert metrics["eval/synthetic/function_accuracy"] == 0.75
    assert "eval/synthetic/empty_category" not in metrics


def test_a_data_set_is_recorded_as_an_input_of_the_run(mlflow_settings: Settings, unique_name: str) -> None:
    with TrackingSession.start(mlflow_settings, experiment=unique_name) as session:
        session.log_dataset_input(
            name="tool-mix@3", digest="abc123", source="/data/tool-mix/3", profile={"train": 120, "test": 30}
        )
    (logged,) = tracking_client(mlflow_settings).get_run(session.run_id).inputs.dataset_inputs
    assert (logged.dataset.name, logged.dataset.digest, logged.dataset.source_type) == ("tool-mix@3", "abc123", "local")
    assert json.loads(logged.dataset.source) == {"uri": "/data/tool-mix/3"}
    assert json.loads(logged.dataset.profile) == {"train": 120, "test": 30}
    assert [(tag.key, tag.value) for tag in logged.tags] == [("mlflow.data.context", "training")]
