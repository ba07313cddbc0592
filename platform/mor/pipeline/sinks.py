"""Picklable sinks that carry training metrics from Ray workers to MLflow."""

from __future__ import annotations

from typing import Any

from mor.registry import TrackingSession
from mor.settings import Settings

__all__ = ["MlflowMetricsSink"]


class MlflowMetricsSink:
    """Logs a worker's metrics to an existing MLflow run; attaches lazily in the worker process."""

    def __init__(self, settings: Settings, run_id: str) -> None:
        self.settings = settings
        self.run_id = run_id
        self._session: TrackingSession | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {"settings": self.settings, "run_id": self.run_id, "_session": None}

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        """Log `metrics` at `step` (buffered; flushed on the last step and periodically)."""
        if self._session is None:
            self._session = TrackingSession.attach(self.settings, self.run_id, flush_interval_s=2.0)
        self._session.log_metrics(metrics, step=step)
        if metrics.get("step") == metrics.get("total_steps"):
            self._session.flush()
