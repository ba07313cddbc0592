"""Where the training loop sends metrics and progress.

Metrics: `mor.pipeline.sinks.MlflowMetricsSink` (into the job's MLflow run) or `JsonlMetricsSink` here (a local
file). Progress: `mor.cluster.ProgressReporter` (progress lines the CLI follows).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Protocol, runtime_checkable

__all__ = ["JsonlMetricsSink", "MetricsSink", "ProgressSink"]


@runtime_checkable
class MetricsSink(Protocol):
    """Receives per-step metrics from the rank-0 worker (must be picklable: it travels to the workers)."""

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        """Record metrics at an optimizer step."""


@runtime_checkable
class ProgressSink(Protocol):
    """Receives live progress for the CLI (must be picklable)."""

    def report(self, stage: str, step: int, total: int, metrics: dict[str, float] | None = None) -> None:
        """Publish where the stage stands."""


class JsonlMetricsSink:
    """Appends `{"step": …, **metrics}` lines to a local file (offline runs, debugging, tests)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        """Append one line for `step`."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a") as handle:
            handle.write(json.dumps({"step": step, **metrics}) + "\n")
