"""One MLflow run of a job: flattened spec params, batched per-step metrics, artifacts, a final status."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

from mlflow import MlflowClient
from mlflow.entities import Dataset, DatasetInput, InputTag, Metric, Param, RunTag

from mor.registry.client import get_or_create_experiment, tracking_client
from mor.registry.errors import RegistryError
from mor.registry.params import flatten_params, param_key
from mor.settings import Settings

__all__ = ["JOB_ID_TAG", "RunEndStatus", "TrackingSession", "end_open_runs"]

RunEndStatus = Literal["FINISHED", "FAILED", "KILLED"]
JOB_ID_TAG = "mor.job_id"
_PARAMS_PER_BATCH = 100  # MLflow: at most 100 params or tags per log_batch
_METRICS_PER_BATCH = 1000  # MLflow: at most 1000 metrics per log_batch


class TrackingSession:
    """Logging to one MLflow run. Use `TrackingSession.start(...)` (or `attach`) and end it, or use it as a
    context manager: leaving the block normally ends the run FINISHED, an exception ends it FAILED (KILLED on
    KeyboardInterrupt), so no run is left RUNNING by a failing stage.

    Per-step metrics are buffered and written in batches of up to 1000, at least every `flush_interval_s`.
    """

    def __init__(
        self,
        client: MlflowClient,
        run_id: str,
        *,
        experiment_id: str,
        flush_interval_s: float = 5.0,
    ) -> None:
        self._client = client
        self._run_id = run_id
        self._experiment_id = experiment_id
        self._flush_interval_s = flush_interval_s
        self._pending: list[Metric] = []
        self._last_flush = time.monotonic()
        self._ended = False

    @classmethod
    def start(
        cls,
        settings: Settings,
        *,
        experiment: str,
        run_name: str | None = None,
        tags: Mapping[str, str] | None = None,
        flush_interval_s: float = 5.0,
    ) -> TrackingSession:
        """Start a run in experiment `experiment` (created if missing) of the store in `settings`."""
        client = tracking_client(settings)
        experiment_id = get_or_create_experiment(client, settings, experiment)
        run = client.create_run(
            experiment_id, run_name=run_name, tags={str(k): str(v) for k, v in (tags or {}).items()}
        )
        return cls(client, run.info.run_id, experiment_id=experiment_id, flush_interval_s=flush_interval_s)

    @classmethod
    def attach(cls, settings: Settings, run_id: str, *, flush_interval_s: float = 5.0) -> TrackingSession:
        """Continue logging to an existing RUNNING run (e.g. from a training worker process)."""
        client = tracking_client(settings)
        from mlflow.exceptions import MlflowException

        try:
            run = client.get_run(run_id)
        except MlflowException as exc:
            raise RegistryError(
                f"run_id: {run_id!r} is not a run of {settings.tracking_uri}; pass the id printed by the job"
            ) from exc
        if run.info.status != "RUNNING":
            raise RegistryError(
                f"run_id: run {run_id} is {run.info.status}, must be RUNNING to log to it; start a new run"
            )
        return cls(client, run_id, experiment_id=run.info.experiment_id, flush_interval_s=flush_interval_s)

    @property
    def run_id(self) -> str:
        """The MLflow run id."""
        return self._run_id

    @property
    def experiment_id(self) -> str:
        """The MLflow experiment id."""
        return self._experiment_id

    @property
    def client(self) -> MlflowClient:
        """The MLflow client (for the registry module; other packages should not need it)."""
        return self._client

    @property
    def artifact_uri(self) -> str:
        """Root URI of the run's artifacts."""
        return self._client.get_run(self._run_id).info.artifact_uri

    def log_params(self, params: Mapping[str, Any]) -> dict[str, str]:
        """Log params (nested mappings are flattened, long values cut); return what was logged."""
        flat = flatten_params(params)
        items = [Param(key, value) for key, value in flat.items()]
        for start in range(0, len(items), _PARAMS_PER_BATCH):
            self._client.log_batch(self._run_id, params=items[start : start + _PARAMS_PER_BATCH])
        return flat

    def log_spec(self, spec: Mapping[str, Any], *, spec_text: str | None = None) -> dict[str, str]:
        """Log a job spec: its flattened fields as params and, given its YAML text, `spec.yaml` as artifact."""
        flat = self.log_params(spec)
        if spec_text is not None:
            self._client.log_text(self._run_id, spec_text, "spec.yaml")
        return flat

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        """Set run tags."""
        items = [RunTag(param_key([str(key)]), str(value)) for key, value in tags.items()]
        for start in range(0, len(items), _PARAMS_PER_BATCH):
            self._client.log_batch(self._run_id, tags=items[start : start + _PARAMS_PER_BATCH])

    def log_metrics(self, metrics: Mapping[str, float], *, step: int) -> None:
        """Queue metrics of training step `step`; they are written in batches (see `flush`)."""
        timestamp = int(time.time() * 1000)
        for key, value in metrics.items():
            self._pending.append(Metric(param_key([str(key)]), float(value), timestamp, int(step)))
        if len(self._pending) >= _METRICS_PER_BATCH or time.monotonic() - self._last_flush >= self._flush_interval_s:
            self.flush()

    def flush(self) -> None:
        """Write every queued metric now."""
        while self._pending:
            batch, self._pending = self._pending[:_METRICS_PER_BATCH], self._pending[_METRICS_PER_BATCH:]
            self._client.log_batch(self._run_id, metrics=batch)
        self._last_flush = time.monotonic()

    def log_summary(self, metrics: Mapping[str, float], *, prefix: str) -> dict[str, float]:
        """Log summary metrics (e.g. an eval suite's accuracies) as `<prefix>/<name>` at step 0, right away."""
        return _log_summary(self._client, self._run_id, metrics, prefix=prefix)

    def log_artifact(self, path: Path | str, artifact_path: str | None = None) -> None:
        """Upload one file into the run's artifacts (under `artifact_path` when given)."""
        self._client.log_artifact(self._run_id, str(path), artifact_path)

    def log_artifacts(self, directory: Path | str, artifact_path: str | None = None) -> None:
        """Upload a directory's contents into the run's artifacts (under `artifact_path` when given)."""
        self._client.log_artifacts(self._run_id, str(directory), artifact_path)

    def log_dataset_input(
        self,
        *,
        name: str,
        digest: str,
        source: str,
        profile: Mapping[str, Any],
        context: str = "training",
        schema: Mapping[str, Any] | None = None,
    ) -> None:
        """Record a data set as an input of the run (MLflow's dataset inputs: name, digest, local source, profile
        and, when given, the schema of its rows), so the run shows which data trained it."""
        dataset = Dataset(
            name=name,
            digest=digest,
            source_type="local",
            source=json.dumps({"uri": source}),
            profile=json.dumps(dict(profile), ensure_ascii=False, default=str),
            schema=json.dumps(dict(schema)) if schema is not None else None,
        )
        tags = [InputTag(key="mlflow.data.context", value=context)]
        self._client.log_inputs(self._run_id, datasets=[DatasetInput(dataset=dataset, tags=tags)])

    def log_text(self, text: str, artifact_file: str) -> None:
        """Write `text` as the artifact file `artifact_file`."""
        self._client.log_text(self._run_id, text, artifact_file)

    @property
    def ended(self) -> bool:
        """True once `end` has run."""
        return self._ended

    def end(self, status: RunEndStatus = "FINISHED") -> None:
        """Flush metrics and end the run with `status` (FINISHED, FAILED or KILLED); later calls do nothing."""
        if self._ended:
            return
        if status not in ("FINISHED", "FAILED", "KILLED"):
            raise RegistryError(f"status: got {status!r}, must be FINISHED, FAILED or KILLED")
        try:
            self.flush()
        finally:
            self._client.set_terminated(self._run_id, status=status)
            self._ended = True

    def __enter__(self) -> TrackingSession:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.end("FINISHED")
            return
        status: RunEndStatus = "KILLED" if issubclass(exc_type, KeyboardInterrupt) else "FAILED"
        try:
            self.flush()
        except Exception:  # noqa: BLE001 - the run must still be ended; the original error propagates
            self._pending.clear()
        self.end(status)


def end_open_runs(settings: Settings, *, job_id: str, status: RunEndStatus = "KILLED") -> list[str]:
    """End every RUNNING run tagged `mor.job_id=<job_id>` with `status`; return their ids.

    For runs whose process died without ending them (a stopped or killed Ray job).
    """
    client = tracking_client(settings)
    experiments = client.search_experiments()
    if not experiments:
        return []
    runs = client.search_runs(
        [experiment.experiment_id for experiment in experiments],
        filter_string=f"tags.`{JOB_ID_TAG}` = '{job_id}' and attributes.status = 'RUNNING'",
    )
    ended = []
    for run in runs:
        client.set_terminated(run.info.run_id, status=status)
        ended.append(run.info.run_id)
    return ended


def _log_summary(client: MlflowClient, run_id: str, metrics: Mapping[str, float], *, prefix: str) -> dict[str, float]:
    timestamp = int(time.time() * 1000)
    logged: dict[str, float] = {}
    for name, value in metrics.items():
        number = float(value)
        if math.isnan(number):
            continue  # a summary of nothing (e.g. an empty category) is not a measurement
        logged[param_key([f"{prefix}/{name}" if prefix else str(name)])] = number
    items = [Metric(key, value, timestamp, 0) for key, value in logged.items()]
    for start in range(0, len(items), _METRICS_PER_BATCH):
        client.log_batch(run_id, metrics=items[start : start + _METRICS_PER_BATCH])
    return logged
