"""Settings come from the MOR_* / MLFLOW_* / RAY_* variables only, with every default under MOR_HOME."""

from __future__ import annotations

from pathlib import Path

import pytest

from mor.settings import Settings

_VARIABLES = (
    "MOR_HOME",
    "MLFLOW_TRACKING_URI",
    "MOR_DATABASE_URL",
    "RAY_ADDRESS",
    "MOR_BENCHMARKS_DIR",
    "MOR_DATASETS_DIR",
)


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    for name in _VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    return tmp_path / "user"


def test_default_home_is_dot_mor_in_the_user_home_not_the_user_home_itself(clean_env: Path) -> None:
    settings = Settings()
    assert settings.home == clean_env / ".mor"
    assert settings.resolved_home == (clean_env / ".mor").resolve()
    assert settings.tracking_uri == f"sqlite:///{settings.resolved_home / 'mlflow.db'}"
    assert settings.db_url == f"sqlite:///{settings.resolved_home / 'results.db'}"
    assert settings.ray_dir == settings.resolved_home / "ray"
    assert settings.ray_address is None
    assert settings.datasets_dir == settings.resolved_home / "datasets"


def test_environment_variables_set_every_field(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("MOR_HOME", str(tmp_path / "state"))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    monkeypatch.setenv("MOR_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
    monkeypatch.setenv("RAY_ADDRESS", "http://127.0.0.1:8265")
    monkeypatch.setenv("MOR_BENCHMARKS_DIR", str(tmp_path / "bench"))
    monkeypatch.setenv("MOR_DATASETS_DIR", str(tmp_path / "shared" / "datasets"))
    settings = Settings()
    assert settings.home == tmp_path / "state"
    assert settings.tracking_uri == "http://127.0.0.1:5000"
    assert settings.db_url == "postgresql+psycopg://postgres@127.0.0.1:5432/test"
    assert settings.ray_address == "http://127.0.0.1:8265"
    assert settings.benchmarks_dir == tmp_path / "bench"
    assert settings.datasets_dir == (tmp_path / "shared" / "datasets").resolve()


def test_upper_case_field_names_in_the_environment_are_not_settings(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", "sqlite:////elsewhere.db")  # another program's variable, not MOR_DATABASE_URL
    monkeypatch.setenv("BENCHMARKS_DIR", "/elsewhere")
    settings = Settings()
    assert settings.home == clean_env / ".mor"  # $HOME itself is not MOR_HOME
    assert settings.database_url is None and settings.benchmarks_dir is None


def test_two_homes_share_no_state(tmp_path: Path) -> None:
    first = Settings(home=tmp_path / "a", mlflow_tracking_uri=None, database_url=None, ray_address=None)
    second = Settings(home=tmp_path / "b", mlflow_tracking_uri=None, database_url=None, ray_address=None)
    for left, right in [
        (first.tracking_uri, second.tracking_uri),
        (first.db_url, second.db_url),
        (str(first.ray_dir), str(second.ray_dir)),
    ]:
        assert left != right
