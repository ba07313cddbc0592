"""Typed settings for URLs and paths, read from the environment at entry points only."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["Settings"]


class Settings(BaseSettings):
    """Where mor keeps its state and which services it talks to.

    Build one at an entry point (`Settings()`), then pass it down; nothing reads the environment at import time.
    Every default lives under `home`, so two users with different `MOR_HOME`s never see each other's state.
    """

    # Case-sensitive, so that only the upper-case aliases below are read from the environment: matched
    # case-insensitively, the field name `home` would pick up $HOME and put every default straight into it.
    model_config = SettingsConfigDict(env_prefix="", extra="ignore", populate_by_name=True, case_sensitive=True)

    home: Path = Field(
        default_factory=lambda: Path.home() / ".mor",
        validation_alias="MOR_HOME",
        description="Directory holding the embedded defaults' state (Ray, MLflow, SQLite, data, checkpoints).",
    )
    mlflow_tracking_uri: str | None = Field(
        default=None,
        validation_alias="MLFLOW_TRACKING_URI",
        description="MLflow tracking URI; default a SQLite store under MOR_HOME.",
    )
    database_url: str | None = Field(
        default=None,
        validation_alias="MOR_DATABASE_URL",
        description="SQLAlchemy URL of the results database; default a SQLite file under MOR_HOME.",
    )
    ray_address: str | None = Field(
        default=None,
        validation_alias="RAY_ADDRESS",
        description="Address of a Ray cluster (dashboard URL for job submission); default an embedded local Ray.",
    )
    benchmarks_dir: Path | None = Field(
        default=None,
        validation_alias="MOR_BENCHMARKS_DIR",
        description="Directory holding bfcl/ and stabletoolbench/ benchmark data.",
    )
    datasets_root: Path | None = Field(
        default=None,
        validation_alias="MOR_DATASETS_DIR",
        description="Where kind: data jobs store named data sets (e.g. a shared mount every node sees); "
        "default MOR_HOME/datasets.",
    )

    @property
    def resolved_home(self) -> Path:
        """The home directory, absolute and created."""
        path = self.home.expanduser().resolve()
        path.mkdir(parents=True, exist_ok=True)
        return path

    @property
    def tracking_uri(self) -> str:
        """The MLflow tracking URI in force."""
        return self.mlflow_tracking_uri or f"sqlite:///{self.resolved_home / 'mlflow.db'}"

    @property
    def artifact_root(self) -> Path:
        """Default MLflow artifact root for the embedded store."""
        return self.resolved_home / "mlartifacts"

    @property
    def db_url(self) -> str:
        """The results-database URL in force."""
        return self.database_url or f"sqlite:///{self.resolved_home / 'results.db'}"

    @property
    def ray_dir(self) -> Path:
        """State of the embedded local Ray cluster."""
        return self.resolved_home / "ray"

    @property
    def storage_dir(self) -> Path:
        """Ray Train storage path (checkpoints) for the embedded default."""
        return self.resolved_home / "storage"

    @property
    def cache_dir(self) -> Path:
        """Generated data sets, tokenizers and built-in model files."""
        return self.resolved_home / "cache"

    @property
    def datasets_dir(self) -> Path:
        """Named data sets written by `kind: data` jobs (one folder per name, one per version)."""
        if self.datasets_root is not None:
            return self.datasets_root.expanduser().resolve()
        return self.resolved_home / "datasets"
