"""The runtime_env of a mor job on the local and on a remote cluster."""

from __future__ import annotations

from pathlib import Path

import mor
from mor.cluster import PROGRESS_MARKER, job_runtime_env, mor_source_root, settings_env
from mor.settings import Settings


def test_local_job_gets_every_setting_and_this_source_tree(tmp_path: Path) -> None:
    settings = Settings(
        home=tmp_path / "home", mlflow_tracking_uri=None, database_url=None, ray_address=None, benchmarks_dir=None
    )
    env = job_runtime_env(settings, local=True, env_vars={"MOR_JOB_ID": "j1"})
    assert set(env) == {"env_vars"}
    variables = env["env_vars"]
    assert variables["MOR_HOME"] == str((tmp_path / "home").resolve())
    assert variables["MLFLOW_TRACKING_URI"] == f"sqlite:///{(tmp_path / 'home').resolve() / 'mlflow.db'}"
    assert variables["MOR_DATABASE_URL"] == f"sqlite:///{(tmp_path / 'home').resolve() / 'results.db'}"
    assert variables["PYTHONPATH"] == str(Path(mor.__file__).resolve().parents[1])
    assert variables["RAY_DEDUP_LOGS_ALLOW_REGEX"] == PROGRESS_MARKER
    assert variables["PYTHONUNBUFFERED"] == "1"
    assert variables["MOR_JOB_ID"] == "j1"


def test_remote_job_ships_the_package_and_only_explicit_urls(tmp_path: Path) -> None:
    settings = Settings(
        home=tmp_path / "home",
        mlflow_tracking_uri="http://mlflow:5000",
        database_url=None,
        ray_address="http://head:8265",
        benchmarks_dir=None,
    )
    env = job_runtime_env(settings, local=False, working_dir=tmp_path, pip=["pyyaml"])
    assert env["py_modules"] == [str(mor_source_root() / "mor")]
    assert (mor_source_root() / "mor" / "__init__.py").is_file()
    assert env["working_dir"] == str(tmp_path.resolve())
    assert env["pip"] == ["pyyaml"]
    assert "__pycache__" in env["excludes"]
    assert env["env_vars"]["MLFLOW_TRACKING_URI"] == "http://mlflow:5000"
    assert "MOR_HOME" not in env["env_vars"] and "MOR_DATABASE_URL" not in env["env_vars"]
    assert "PYTHONPATH" not in env["env_vars"]
    assert settings_env(settings, local=False) == {"MLFLOW_TRACKING_URI": "http://mlflow:5000"}
