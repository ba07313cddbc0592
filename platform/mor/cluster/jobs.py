"""A thin client of the Ray Job Submission API with clear errors and synchronous log tailing."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx

from mor.cluster.auth import auth_headers, resolve_token
from mor.cluster.errors import ClusterAuthError, ClusterError, ClusterUnreachableError, JobNotFoundError

__all__ = ["TERMINAL_STATUSES", "JobClient", "JobInfo", "normalize_dashboard_address"]

TERMINAL_STATUSES = frozenset({"STOPPED", "SUCCEEDED", "FAILED"})
_ADDRESS_ENV = ("RAY_ADDRESS", "RAY_API_SERVER_ADDRESS")
_CONNECT_TIMEOUT_S = 3.0


@dataclass(frozen=True)
class JobInfo:
    """What the cluster knows about one submitted job."""

    job_id: str
    status: str
    entrypoint: str
    message: str | None = None
    start_time: float | None = None
    end_time: float | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    driver_exit_code: int | None = None

    @property
    def is_terminal(self) -> bool:
        """True once the job can no longer change state (STOPPED, SUCCEEDED, FAILED)."""
        return self.status in TERMINAL_STATUSES


def normalize_dashboard_address(address: str) -> str:
    """The HTTP URL of a Ray dashboard from `http(s)://host:port`, `host:port` or `ray://host:port`."""
    address = address.strip().rstrip("/")
    if not address:
        raise ClusterError(
            "address: got an empty string, must be the Ray dashboard URL; e.g. --address http://127.0.0.1:8265"
        )
    if address.startswith(("http://", "https://")):
        return address
    if address.startswith("ray://"):
        # Ray Client addresses name the client server port (10001); the job API lives on the dashboard port.
        raise ClusterError(
            f"address: got {address!r}, a Ray Client address; job submission needs the dashboard URL of the "
            "head node; e.g. --address http://<head-host>:8265"
        )
    return f"http://{address}"


@contextmanager
def _without_address_env() -> Iterator[None]:
    """Ray's client prefers RAY_ADDRESS over an explicit address; hide it while the client is built."""
    saved = {name: os.environ.pop(name) for name in _ADDRESS_ENV if name in os.environ}
    try:
        yield
    finally:
        os.environ.update(saved)


class JobClient:
    """Submit, inspect, follow and stop Ray jobs on the cluster whose dashboard is at `address`.

    `token` authenticates to clusters with token auth on (Ray's default); without it the client looks where Ray
    does (`RAY_AUTH_TOKEN`, `RAY_AUTH_TOKEN_PATH`, `~/.ray/auth_token`).
    """

    def __init__(self, address: str, *, token: str | None = None, timeout_s: float = 10.0) -> None:
        self._address = normalize_dashboard_address(address)
        self._headers = auth_headers(token if token is not None else resolve_token())
        self._timeout_s = timeout_s
        self._check_reachable()
        self._sdk: Any = None

    @property
    def _client(self) -> Any:
        """Ray's job SDK client, built on first use (submitting and tailing need it; reading goes over REST, so
        `mor job list` and `mor job status` do not import Ray)."""
        if self._sdk is None:
            from ray.job_submission import JobSubmissionClient

            with _without_address_env():
                self._sdk = JobSubmissionClient(self._address, headers=dict(self._headers))
        return self._sdk

    def _rest(self, method: str, path: str, job_id: str | None = None) -> Any:
        """A call to the dashboard's job REST API (`/api/jobs/...`), its JSON answer; errors as ClusterError."""
        url = f"{self._address}/api/jobs/{path}"
        try:
            response = httpx.request(method, url, headers=self._headers, timeout=self._timeout_s)
        except httpx.HTTPError as exc:
            raise ClusterError(f"the job server at {self._address} failed: {type(exc).__name__}: {exc}") from exc
        if response.status_code == 404 and job_id is not None:
            raise self._job_error(job_id, RuntimeError("404 does not exist"))
        if response.status_code != 200:
            what = f"job {job_id}" if job_id is not None else "list"
            raise ClusterError(
                f"{what}: the job server at {self._address} answered HTTP {response.status_code}: "
                f"{response.text.strip()[:300]}"
            )
        return response.json()

    @property
    def address(self) -> str:
        """The dashboard URL this client talks to."""
        return self._address

    def submit(
        self,
        entrypoint: str,
        *,
        runtime_env: Mapping[str, Any] | None = None,
        metadata: Mapping[str, str] | None = None,
        submission_id: str | None = None,
    ) -> str:
        """Submit a job running the shell command `entrypoint`; return its id (the submission id)."""
        try:
            return self._client.submit_job(
                entrypoint=entrypoint,
                runtime_env=dict(runtime_env) if runtime_env else None,
                metadata={str(k): str(v) for k, v in (metadata or {}).items()} or None,
                submission_id=submission_id,
            )
        except RuntimeError as exc:
            raise ClusterError(
                f"submit: the job server at {self._address} refused entrypoint {entrypoint!r} "
                f"(submission_id={submission_id!r}): {exc}; check the runtime_env and that the id is unused"
            ) from exc

    def info(self, job_id: str) -> JobInfo:
        """Everything the cluster reports about job `job_id`."""
        return _job_info(self._rest("GET", job_id, job_id))

    def status(self, job_id: str) -> str:
        """The job's status: PENDING, RUNNING, STOPPED, SUCCEEDED or FAILED."""
        return self.info(job_id).status

    def logs(self, job_id: str) -> str:
        """The job driver's whole log so far."""
        return str(self._rest("GET", f"{job_id}/logs", job_id).get("logs") or "")

    def tail_logs(self, job_id: str, *, poll_s: float = 1.0) -> Iterator[str]:
        """Yield the job's log line by line (newline stripped) as it is written, until the job ends.

        Uses the dashboard's log websocket; if that drops, continues by polling the whole log every `poll_s`.
        Must not be called from a thread that runs an asyncio event loop (use `atail_logs` there).
        """
        self.info(job_id)  # fail early and clearly on an unknown id
        loop = asyncio.new_event_loop()
        chunks = self.atail_logs(job_id)
        seen = 0
        pending = ""
        try:
            while True:
                try:
                    chunk = loop.run_until_complete(anext(chunks))
                except StopAsyncIteration:
                    break
                except Exception:  # noqa: BLE001 - any websocket failure: fall back to polling
                    # The websocket closed early: continue by polling from where it stopped.
                    for chunk in self._poll_log_chunks(job_id, seen, poll_s):
                        seen += len(chunk)
                        lines, pending = _split_lines(pending + chunk)
                        yield from lines
                    break
                seen += len(chunk)
                lines, pending = _split_lines(pending + chunk)
                yield from lines
        finally:
            loop.run_until_complete(chunks.aclose())
            loop.close()
        if pending:
            yield pending

    async def atail_logs(self, job_id: str) -> AsyncIterator[str]:
        """Async iterator over raw log chunks of job `job_id` until it ends."""
        async for chunk in self._client.tail_job_logs(job_id):
            yield chunk

    def list(self, *, metadata: Mapping[str, str] | None = None) -> list[JobInfo]:
        """Submitted jobs, oldest first; only those whose metadata contains `metadata` when given."""
        jobs = self._rest("GET", "")
        wanted = dict(metadata or {})
        infos = [_job_info(details) for details in jobs if details.get("submission_id")]
        infos = [info for info in infos if all(info.metadata.get(k) == v for k, v in wanted.items())]
        return sorted(infos, key=lambda info: (info.start_time or 0.0, info.job_id))

    def stop(self, job_id: str) -> bool:
        """Ask the job to stop; True when it was still running."""
        return bool(self._rest("POST", f"{job_id}/stop", job_id).get("stopped"))

    def wait(self, job_id: str, *, timeout_s: float = 600.0, poll_s: float = 0.5) -> JobInfo:
        """Block until job `job_id` is terminal and return its final info; raise TimeoutError after `timeout_s`."""
        deadline = time.monotonic() + timeout_s
        while True:
            info = self.info(job_id)
            if info.is_terminal:
                return info
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"job {job_id}: still {info.status} after {timeout_s:.0f} s; raise timeout_s or "
                    f"follow it with `mor job logs {job_id} --follow`"
                )
            time.sleep(poll_s)

    def _poll_log_chunks(self, job_id: str, offset: int, poll_s: float) -> Iterator[str]:
        while True:
            terminal = self.info(job_id).is_terminal
            text = self.logs(job_id)
            if len(text) > offset:
                yield text[offset:]
                offset = len(text)
            if terminal:
                return
            time.sleep(poll_s)

    def _check_reachable(self) -> None:
        url = f"{self._address}/api/version"
        # A host that drops packets shows up as a connect timeout: a live head node accepts at once, however busy.
        connect_s = min(self._timeout_s, _CONNECT_TIMEOUT_S)
        timeout = httpx.Timeout(self._timeout_s, connect=connect_s)
        try:
            response = httpx.get(url, headers=self._headers, timeout=timeout)
        except httpx.HTTPError as exc:
            if isinstance(exc, httpx.ConnectTimeout):
                why = f"nothing accepted a connection within {connect_s:.0f} s"
            elif isinstance(exc, httpx.TimeoutException):
                why = f"it accepted the connection but sent no answer within {self._timeout_s:.0f} s"
            else:
                why = f"{type(exc).__name__}: {exc}"
            raise ClusterUnreachableError(
                f"address: no Ray job server answers at {self._address} ({why}); "
                "the address must be the dashboard URL of a running Ray head node (default port 8265); "
                "fix: check --address / RAY_ADDRESS, or unset both to use the embedded local cluster"
            ) from exc
        if response.status_code in (401, 403):
            raise ClusterAuthError(
                f"token: the Ray cluster at {self._address} answered {response.status_code} "
                f"({response.text.strip()[:200]}); it has token authentication on and "
                f"{'the token sent is wrong' if self._headers else 'no token was found'}; "
                "fix: set RAY_AUTH_TOKEN or RAY_AUTH_TOKEN_PATH to the cluster's token "
                "(`ray get-auth-token` on the head node prints it)"
            )
        if response.status_code != 200:
            raise ClusterUnreachableError(
                f"address: {url} answered HTTP {response.status_code}, expected 200 from a Ray dashboard; "
                "fix: point --address / RAY_ADDRESS at the head node's dashboard URL (default port 8265)"
            )

    def _job_error(self, job_id: str, exc: Exception) -> ClusterError:
        text = str(exc)
        if "404" in text or "does not exist" in text:
            return JobNotFoundError(
                f"job id: {job_id!r} is not known to the cluster at {self._address}; "
                "fix: pick an id from `mor job list`"
            )
        return ClusterError(f"job {job_id}: the job server at {self._address} failed: {text}")


def _job_info(details: Mapping[str, Any]) -> JobInfo:
    """A job from the REST API's JSON (Ray's JobDetails: times in milliseconds)."""
    return JobInfo(
        job_id=str(details.get("submission_id") or details.get("job_id")),
        status=str(details.get("status")),
        entrypoint=str(details.get("entrypoint")),
        message=details.get("message"),
        start_time=details["start_time"] / 1000.0 if details.get("start_time") else None,
        end_time=details["end_time"] / 1000.0 if details.get("end_time") else None,
        metadata=dict(details.get("metadata") or {}),
        driver_exit_code=details.get("driver_exit_code"),
    )


def _split_lines(text: str) -> tuple[list[str], str]:
    """Complete lines of `text` and the unfinished rest."""
    *lines, rest = text.split("\n")
    return [line.rstrip("\r") for line in lines], rest
