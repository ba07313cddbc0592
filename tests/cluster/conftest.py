"""Helpers for cluster tests.

The session's one local Ray cluster (`local_cluster`, a ClusterInfo) and the Settings of its home
(`ray_settings`) are the session fixtures of tests/conftest.py, shared with every other test folder.
"""

from __future__ import annotations

from pathlib import Path

from mor.settings import Settings


def settings_for(home: Path) -> Settings:
    """Settings of `home` that ignore the caller's environment."""
    return Settings(home=home, mlflow_tracking_uri=None, database_url=None, ray_address=None, benchmarks_dir=None)
