"""The evaluation service: evaluation runs submitted as Ray jobs, one-off or fired by the scheduler.

- `RayEvalSubmitter(settings, address=...)`: submits `python -m mor.pipeline.eval_job --run-id N` to the embedded
  local Ray (started if needed) or the cluster at `address`. `fire` is the scheduler's callable (idempotent per
  submission id: Ray refuses a second job with the same id, and the existing id is returned); `job_status` lets
  the scheduler fail and retry runs whose job died without reporting; `submit_run` records and submits a
  one-off run (`mor eval run`).
- `build_scheduler(settings, ...)`: migrate the database and build the `Scheduler` wired to Ray.
- `serve(settings, ...)`: the long-lived service (`mor eval serve`): tick until SIGTERM/SIGINT.
"""

from __future__ import annotations

import logging
import shlex
import signal
import threading
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from mor.cluster import (
    ClusterError,
    ClusterUnreachableError,
    JobClient,
    JobNotFoundError,
    ensure_local_cluster,
    job_runtime_env,
)
from mor.scheduler.fire import ScheduledFire
from mor.scheduler.loop import Scheduler
from mor.settings import Settings
from mor.store import create_run, finish_run, make_engine, session_scope, upgrade

__all__ = ["EVAL_ENTRYPOINT", "RayEvalSubmitter", "SubmittedRun", "build_scheduler", "serve"]

EVAL_ENTRYPOINT = "python -m mor.pipeline.eval_job"
_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SubmittedRun:
    """A one-off run: its SQL row and the Ray job evaluating it."""

    run_id: int
    job_id: str


class RayEvalSubmitter:
    """Submits evaluation runs as Ray jobs on the cluster of `settings` (or at `address`); connects lazily.

    The job rebuilds its settings from the environment Ray gives it: every setting for the embedded cluster,
    only explicit URLs (MOR_DATABASE_URL, MLFLOW_TRACKING_URI) for a remote one.
    """

    def __init__(
        self, settings: Settings, *, address: str | None = None, client: JobClient | None = None, local: bool = True
    ) -> None:
        self.settings = settings
        self.address = address
        self._client = client
        self._local = local
        self._lock = threading.Lock()

    def _connect(self, *, fresh: bool = False) -> tuple[JobClient, bool]:
        with self._lock:
            if self._client is None or fresh:
                cluster = ensure_local_cluster(self.settings, self.address)
                self._client, self._local = cluster.job_client(), cluster.local
            return self._client, self._local

    @property
    def client(self) -> JobClient:
        """The job client (connecting, and starting the embedded cluster, on first use)."""
        return self._connect()[0]

    def submit(self, run_id: int, submission_id: str, *, metadata: Mapping[str, str] | None = None) -> str:
        """Submit the eval job of queued run `run_id` as `submission_id`; return the job id.

        Submitting an id that already exists returns it (the scheduler's retry after a crash between submitting
        and recording finds the job instead of starting a second one).
        """
        entrypoint = f"{EVAL_ENTRYPOINT} --run-id {int(run_id)} --job-id {shlex.quote(submission_id)}"
        tags = {"mor.kind": "eval", "mor.eval_run_id": str(run_id), **(metadata or {})}
        try:
            client, local = self._connect()
            return self._submit(client, local, entrypoint, submission_id, tags)
        except ClusterUnreachableError:
            # The cluster went away (an embedded one is started again): one more try on a fresh connection.
            client, local = self._connect(fresh=True)
            return self._submit(client, local, entrypoint, submission_id, tags)

    def _submit(
        self, client: JobClient, local: bool, entrypoint: str, submission_id: str, metadata: Mapping[str, str]
    ) -> str:
        try:
            return client.submit(
                entrypoint,
                runtime_env=job_runtime_env(self.settings, local=local),
                metadata=metadata,
                submission_id=submission_id,
            )
        except ClusterError:
            if self._exists(client, submission_id):
                _log.info("job %s exists already: not submitted again", submission_id)
                return submission_id
            raise

    @staticmethod
    def _exists(client: JobClient, job_id: str) -> bool:
        try:
            client.info(job_id)
        except ClusterError:
            return False
        return True

    def fire(self, scheduled: ScheduledFire, scheduled_for: datetime) -> str:
        """The scheduler's `fire`: submit the attempt's queued run under its stable submission id."""
        metadata = {
            "mor.schedule": scheduled.name,
            "mor.scheduled_for": scheduled_for.isoformat(),
            "mor.attempt": str(scheduled.attempt),
        }
        return self.submit(scheduled.run_id, scheduled.submission_id, metadata=metadata)

    def job_status(self, job_id: str) -> str | None:
        """The job's state (PENDING, RUNNING, SUCCEEDED, FAILED, STOPPED), None when the cluster does not know it."""
        try:
            return self.client.status(job_id)
        except JobNotFoundError:
            return None

    def submit_run(
        self,
        *,
        suite: str,
        categories: Sequence[str],
        model_uri: str,
        options: Mapping[str, Any],
        triggered_by: str,
    ) -> SubmittedRun:
        """Record a queued one-off run and submit its job; a failed submission fails the run with the error."""
        upgrade(self.settings.db_url)
        engine = make_engine(self.settings.db_url)
        try:
            with session_scope(engine) as session:
                run = create_run(
                    session=session,
                    suite=suite,
                    categories=list(categories),
                    model_uri=model_uri,
                    triggered_by=triggered_by,
                    config=dict(options),
                )
                job_id = f"mor-eval-run{run.id}-{uuid.uuid4().hex[:6]}"
                run.ray_job_id = job_id
                run_id = run.id
            try:
                self.submit(run_id, job_id, metadata={"mor.triggered_by": triggered_by})
            except Exception as error:
                with session_scope(engine) as session:
                    finish_run(
                        session=session,
                        run_id=run_id,
                        status="failed",
                        error=f"submission failed: {type(error).__name__}: {error}",
                    )
                raise
            return SubmittedRun(run_id, job_id)
        finally:
            engine.dispose()


def build_scheduler(
    settings: Settings,
    *,
    address: str | None = None,
    owner_id: str | None = None,
    submitter: RayEvalSubmitter | None = None,
    lease: timedelta = timedelta(minutes=5),
    retry_delay: timedelta = timedelta(minutes=1),
    misfire_grace: timedelta = timedelta(minutes=1),
) -> Scheduler:
    """A scheduler on the results database of `settings` (migrated first) that fires runs as Ray jobs."""
    upgrade(settings.db_url)
    submitter = submitter or RayEvalSubmitter(settings, address=address)
    return Scheduler(
        make_engine(settings.db_url),
        submitter.fire,
        owner_id=owner_id,
        lease=lease,
        retry_delay=retry_delay,
        misfire_grace=misfire_grace,
        job_status=submitter.job_status,
    )


def serve(
    settings: Settings,
    *,
    address: str | None = None,
    owner_id: str | None = None,
    poll_seconds: float = 10.0,
    stop_event: threading.Event | None = None,
    once: bool = False,
    retry_delay: timedelta = timedelta(minutes=1),
) -> Scheduler:
    """Run the scheduler until `stop_event` is set (SIGTERM and SIGINT set it), or one tick with `once`."""
    scheduler = build_scheduler(settings, address=address, owner_id=owner_id, retry_delay=retry_delay)
    stop = stop_event or threading.Event()
    restore: dict[int, Any] = {}
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGTERM, signal.SIGINT):
            restore[signum] = signal.signal(signum, lambda *_: stop.set())
    try:
        _log.info("evaluation scheduler %s on %s", scheduler.owner_id, scheduler.engine.url.render_as_string())
        if once:
            scheduler.tick()
        else:
            scheduler.run_forever(poll_seconds=poll_seconds, stop_event=stop)
    finally:
        for signum, handler in restore.items():
            signal.signal(signum, handler)
        scheduler.engine.dispose()
    return scheduler
