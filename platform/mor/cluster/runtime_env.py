"""The Ray runtime_env of a mor job: make `mor` importable and hand the job its settings.

- Embedded local cluster: the head node was started from this interpreter, with its directory first on PATH, so
  the job's `python -m mor.pipeline.run ...` runs the same virtual environment where `mor` is installed;
  PYTHONPATH also names the source root of the `mor` package in use, so a job imports exactly this code.
- Remote cluster: the `mor` package directory travels as a `py_modules` entry (Ray uploads it through the job
  server) and `working_dir`, when given (e.g. the folder holding the spec), is uploaded too and becomes the job's
  working directory. Third-party dependencies (torch, transformers, ray, mlflow, ...) must already be installed
  on the cluster's image, or listed in `pip`.

The job reads its settings from the environment, so the settings in force here are passed as env vars. A remote
cluster has its own filesystem: only URLs the user set explicitly (MLFLOW_TRACKING_URI, MOR_DATABASE_URL) are
passed; embedded SQLite paths under this machine's MOR_HOME would mean nothing there.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import mor
from mor.cluster.progress import PROGRESS_MARKER
from mor.settings import Settings

__all__ = ["job_runtime_env", "mor_source_root", "settings_env"]


def mor_source_root() -> Path:
    """The directory that contains the `mor` package in use (the project's `platform/` folder)."""
    return Path(mor.__file__).resolve().parent.parent


def settings_env(settings: Settings, *, local: bool) -> dict[str, str]:
    """Environment variables that rebuild `settings` in a job (all of them locally, explicit URLs remotely)."""
    env: dict[str, str] = {}
    if local:
        env["MOR_HOME"] = str(settings.resolved_home)
        env["MLFLOW_TRACKING_URI"] = settings.tracking_uri
        env["MOR_DATABASE_URL"] = settings.db_url
        if settings.benchmarks_dir is not None:
            env["MOR_BENCHMARKS_DIR"] = str(settings.benchmarks_dir.expanduser().resolve())
        if settings.datasets_root is not None:
            env["MOR_DATASETS_DIR"] = str(settings.datasets_dir)
    else:
        if settings.datasets_root is not None:  # a shared mount: the same path on every node
            env["MOR_DATASETS_DIR"] = str(settings.datasets_root)
        if settings.mlflow_tracking_uri:
            env["MLFLOW_TRACKING_URI"] = settings.mlflow_tracking_uri
        if settings.database_url:
            env["MOR_DATABASE_URL"] = settings.database_url
    return env


def job_runtime_env(
    settings: Settings,
    *,
    local: bool,
    working_dir: Path | None = None,
    env_vars: Mapping[str, str] | None = None,
    pip: Sequence[str] | None = None,
) -> dict[str, Any]:
    """The runtime_env for `JobClient.submit` of a mor job on the local (`local=True`) or a remote cluster."""
    env = settings_env(settings, local=local)
    env["PYTHONUNBUFFERED"] = "1"  # progress lines must reach the log as they are written
    env["RAY_DEDUP_LOGS_ALLOW_REGEX"] = PROGRESS_MARKER
    if local:
        env["PYTHONPATH"] = str(mor_source_root())
    env.update({str(k): str(v) for k, v in (env_vars or {}).items()})
    runtime_env: dict[str, Any] = {"env_vars": env}
    if not local:
        runtime_env["py_modules"] = [str(mor_source_root() / "mor")]
        runtime_env["excludes"] = ["__pycache__", "*.pyc", "*.egg-info"]
    if working_dir is not None:
        runtime_env["working_dir"] = str(Path(working_dir).resolve())
    if pip:
        runtime_env["pip"] = list(pip)
    return runtime_env
