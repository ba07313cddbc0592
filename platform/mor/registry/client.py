"""MLflow clients bound to the settings in force (no global tracking URI is set)."""

from __future__ import annotations

import re
from urllib.parse import urlparse

from mlflow import MlflowClient

from mor.registry.errors import RegistryError
from mor.settings import Settings

__all__ = ["experiment_artifact_location", "get_or_create_experiment", "tracking_client", "tracking_ui_command"]

_SERVER_SCHEMES = {"http", "https", "databricks", "databricks-uc", "uc"}


def tracking_client(settings: Settings) -> MlflowClient:
    """An MlflowClient whose tracking and registry URIs are `settings.tracking_uri`."""
    uri = settings.tracking_uri
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def experiment_artifact_location(settings: Settings, experiment: str) -> str | None:
    """Where a new experiment keeps artifacts: under `settings.artifact_root` for a database or file store
    (MLflow would otherwise pick `./mlruns` in the current directory), the server's choice for a tracking server.
    """
    if urlparse(settings.tracking_uri).scheme in _SERVER_SCHEMES:
        return None
    folder = re.sub(r"[^\w.\-]", "_", experiment)
    return (settings.artifact_root / folder).as_uri()


def get_or_create_experiment(client: MlflowClient, settings: Settings, name: str) -> str:
    """The id of experiment `name`, created (with the settings' artifact location) when missing."""
    if not name.strip():
        raise RegistryError("experiment: got an empty name; must name the spec; e.g. experiment='quickstart'")
    existing = client.get_experiment_by_name(name)
    if existing is not None:
        if existing.lifecycle_stage == "deleted":
            raise RegistryError(
                f"experiment: {name!r} exists but is deleted in {settings.tracking_uri}; "
                "restore it (`mlflow experiments restore`) or rename the spec"
            )
        return existing.experiment_id
    from mlflow.exceptions import MlflowException

    try:
        return client.create_experiment(name, artifact_location=experiment_artifact_location(settings, name))
    except MlflowException:
        # Another process created it between the lookup and the create.
        again = client.get_experiment_by_name(name)
        if again is None:
            raise
        return again.experiment_id


def tracking_ui_command(settings: Settings) -> str:
    """The command that opens the MLflow UI on this store (for the CLI's 'where to look' line)."""
    uri = settings.tracking_uri
    if urlparse(uri).scheme in _SERVER_SCHEMES:
        return f"open {uri}"
    return f"mlflow ui --backend-store-uri {uri}"
