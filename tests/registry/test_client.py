"""Clients bound to settings, experiment creation, the UI command."""

from __future__ import annotations

from pathlib import Path

from mor.registry import (
    experiment_artifact_location,
    get_or_create_experiment,
    tracking_client,
    tracking_ui_command,
)
from mor.settings import Settings

from .conftest import make_settings


def test_database_store_keeps_artifacts_under_the_home(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "home")
    location = experiment_artifact_location(settings, "my spec/1")
    assert location == (settings.artifact_root / "my_spec_1").as_uri()
    assert tracking_ui_command(settings) == f"mlflow ui --backend-store-uri sqlite:///{tmp_path / 'home' / 'mlflow.db'}"


def test_tracking_server_chooses_its_own_artifact_location(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "home", tracking_uri="http://mlflow.internal:5000")
    assert experiment_artifact_location(settings, "quickstart") is None
    assert tracking_ui_command(settings) == "open http://mlflow.internal:5000"


def test_get_or_create_experiment_is_idempotent(mlflow_settings: Settings, unique_name: str) -> None:
    client = tracking_client(mlflow_settings)
    first = get_or_create_experiment(client, mlflow_settings, unique_name)
    second = get_or_create_experiment(client, mlflow_settings, unique_name)
    assert first == second
    experiment = client.get_experiment(first)
    assert experiment.name == unique_name
    assert experiment.artifact_location == (mlflow_settings.artifact_root / unique_name).as_uri()
