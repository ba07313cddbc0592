"""Ray plumbing: the embedded local cluster of a MOR_HOME, a Job Submission client, and live job progress.

Only this package starts or stops Ray processes; the job pipeline and the CLI use these names.
"""

from mor.cluster.auth import auth_headers, resolve_token
from mor.cluster.errors import (
    ClusterAuthError,
    ClusterError,
    ClusterStartError,
    ClusterUnreachableError,
    JobNotFoundError,
)
from mor.cluster.jobs import TERMINAL_STATUSES, JobClient, JobInfo, normalize_dashboard_address
from mor.cluster.local import (
    CLUSTER_ENV_MARKER,
    ClusterInfo,
    cluster_processes,
    ensure_local_cluster,
    find_local_cluster,
    node_env,
    ray_executable,
    stop_local_cluster,
)
from mor.cluster.progress import (
    PROGRESS_MARKER,
    ProgressEvent,
    ProgressReporter,
    follow_progress,
    parse_progress_line,
    progress_from_logs,
)
from mor.cluster.runtime_env import job_runtime_env, mor_source_root, settings_env

__all__ = [
    "CLUSTER_ENV_MARKER",
    "PROGRESS_MARKER",
    "TERMINAL_STATUSES",
    "ClusterAuthError",
    "ClusterError",
    "ClusterInfo",
    "ClusterStartError",
    "ClusterUnreachableError",
    "JobClient",
    "JobInfo",
    "JobNotFoundError",
    "ProgressEvent",
    "ProgressReporter",
    "auth_headers",
    "cluster_processes",
    "ensure_local_cluster",
    "find_local_cluster",
    "follow_progress",
    "job_runtime_env",
    "mor_source_root",
    "node_env",
    "normalize_dashboard_address",
    "parse_progress_line",
    "progress_from_logs",
    "ray_executable",
    "resolve_token",
    "settings_env",
    "stop_local_cluster",
]
