"""Errors raised by mor.cluster; each message names the thing, the value, the rule and a fix."""

from __future__ import annotations

__all__ = [
    "ClusterAuthError",
    "ClusterError",
    "ClusterStartError",
    "ClusterUnreachableError",
    "JobNotFoundError",
]


class ClusterError(RuntimeError):
    """Base class of every error raised by mor.cluster."""


class ClusterUnreachableError(ClusterError):
    """No Ray dashboard (job server) answers at the given address."""


class ClusterAuthError(ClusterError):
    """The Ray cluster refused the request: the authentication token is missing or wrong."""


class ClusterStartError(ClusterError):
    """The embedded local Ray head node could not be started."""


class JobNotFoundError(ClusterError, KeyError):
    """The cluster has no job with the given id."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""
