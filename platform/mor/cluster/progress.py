"""Live progress of a job: structured log lines written by the job, parsed back by the CLI.

Design: the job process (driver or a Ray Train worker) prints one line per report,
`MOR_PROGRESS {"stage": ..., "step": ..., ...}`, to stdout. Ray forwards worker output to the job driver's log,
and the Job Submission API serves that log over HTTP, so the CLI only needs the dashboard address (no GCS
connection, no Ray Client, no actor to clean up) and the history survives CLI restarts: `follow_progress` tails
the log and yields each event. Ray's log deduplication would fold near-identical lines coming from different
workers; `job_runtime_env` sets `RAY_DEDUP_LOGS_ALLOW_REGEX` so progress lines are never folded.
"""

from __future__ import annotations

import json
import re
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TextIO

from mor.cluster.jobs import JobClient

__all__ = [
    "PROGRESS_MARKER",
    "ProgressEvent",
    "ProgressReporter",
    "follow_progress",
    "parse_progress_line",
    "progress_from_logs",
]

PROGRESS_MARKER = "MOR_PROGRESS"
_LINE = re.compile(PROGRESS_MARKER + r" (\{.*\})\s*$")


@dataclass(frozen=True)
class ProgressEvent:
    """One progress report: which stage, how far (step of total), its metrics and the estimated time left."""

    stage: str
    step: int
    total: int | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    eta_s: float | None = None
    elapsed_s: float = 0.0
    time: float = 0.0

    @property
    def fraction(self) -> float | None:
        """step / total, or None without a total."""
        return self.step / self.total if self.total else None

    @property
    def loss(self) -> float | None:
        """The `loss` metric when reported."""
        return self.metrics.get("loss")

    @property
    def tokens_per_s(self) -> float | None:
        """The `tokens_per_s` metric when reported."""
        return self.metrics.get("tokens_per_s")

    def to_line(self) -> str:
        """The log line that carries this event."""
        payload = {
            "stage": self.stage,
            "step": self.step,
            "total": self.total,
            "metrics": self.metrics,
            "eta_s": None if self.eta_s is None else round(self.eta_s, 3),
            "elapsed_s": round(self.elapsed_s, 3),
            "time": round(self.time, 3),
        }
        return f"{PROGRESS_MARKER} {json.dumps(payload, sort_keys=True, separators=(',', ':'))}"


def parse_progress_line(line: str) -> ProgressEvent | None:
    """The event carried by a log line (also when Ray prefixed it with its worker tag), or None."""
    match = _LINE.search(line)
    if match is None:
        return None
    try:
        data = json.loads(match.group(1))
        return ProgressEvent(
            stage=str(data["stage"]),
            step=int(data["step"]),
            total=None if data.get("total") is None else int(data["total"]),
            metrics={str(k): float(v) for k, v in (data.get("metrics") or {}).items()},
            eta_s=None if data.get("eta_s") is None else float(data["eta_s"]),
            elapsed_s=float(data.get("elapsed_s") or 0.0),
            time=float(data.get("time") or 0.0),
        )
    except (ValueError, KeyError, TypeError):
        return None


def progress_from_logs(text: str) -> list[ProgressEvent]:
    """Every progress event in a whole job log, in order (e.g. the last one for `mor job status`)."""
    events = (parse_progress_line(line) for line in text.splitlines())
    return [event for event in events if event is not None]


class ProgressReporter:
    """Job side: `report(stage, step, total, metrics)` writes one progress line, with the ETA computed here.

    The ETA of a stage is the average time per step since the stage's first report times the steps left.
    Reports closer together than `min_interval_s` are dropped, except a stage's first and last step.
    """

    def __init__(
        self,
        *,
        stream: TextIO | None = None,
        min_interval_s: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._stream = stream
        self._min_interval_s = min_interval_s
        self._clock = clock
        self._wall_clock = wall_clock
        self._stage_start: dict[str, tuple[float, int]] = {}
        self._last_emit: float | None = None

    def report(
        self,
        stage: str,
        step: int,
        total: int | None = None,
        metrics: Mapping[str, float] | None = None,
    ) -> ProgressEvent | None:
        """Publish progress of `stage`; return the event written, or None when throttled."""
        now = self._clock()
        start_time, start_step = self._stage_start.setdefault(stage, (now, step))
        elapsed = now - start_time
        done = step - start_step
        eta = None
        if total is not None and done > 0:
            eta = max(0.0, elapsed / done * (total - step))
        elif total is not None and step >= total:
            eta = 0.0
        boundary = done == 0 or (total is not None and step >= total)
        if not boundary and self._last_emit is not None and now - self._last_emit < self._min_interval_s:
            return None
        event = ProgressEvent(
            stage=stage,
            step=step,
            total=total,
            metrics={str(k): float(v) for k, v in (metrics or {}).items()},
            eta_s=eta,
            elapsed_s=elapsed,
            time=self._wall_clock(),
        )
        stream = self._stream if self._stream is not None else sys.stdout
        stream.write(event.to_line() + "\n")
        stream.flush()
        self._last_emit = now
        return event


def follow_progress(client: JobClient, job_id: str) -> Iterator[ProgressEvent]:
    """CLI side: yield the job's progress events as they are logged (past ones first) until the job ends."""
    for line in client.tail_logs(job_id):
        event = parse_progress_line(line)
        if event is not None:
            yield event
