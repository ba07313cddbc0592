"""Reading the model registry for people: registered models, their versions and aliases, and one version in full
(the training run's params and metrics, its evaluation scores and the data sets it was trained on).

A version is named `NAME` (its newest complete version), `NAME@ALIAS` or `NAME/VERSION`, with or without the
`models:/` prefix, as `mor model show` takes it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException

from mor.registry.agent import STATUS_TAG
from mor.registry.client import tracking_client
from mor.registry.errors import RegistryError
from mor.registry.tracking import JOB_ID_TAG
from mor.settings import Settings

__all__ = [
    "DatasetInputInfo",
    "ModelInfo",
    "ModelRef",
    "VersionDetails",
    "VersionInfo",
    "describe_version",
    "find_version",
    "job_runs",
    "list_models",
    "list_versions",
    "parse_model_ref",
]

#: The prefix of evaluation summaries in a training run's metrics (`eval/<suite>/<name>`, see mor.evals.record).
EVAL_PREFIX = "eval/"
_REF = re.compile(r"^(?:models:/)?(?P<name>[^/@\s]+)(?:@(?P<alias>[^/@\s]+)|/(?P<version>[^/@\s]+))?/?$")


@dataclass(frozen=True)
class ModelRef:
    """`NAME`, `NAME@ALIAS` or `NAME/VERSION` taken apart."""

    name: str
    alias: str | None = None
    version: str | None = None

    def __str__(self) -> str:
        return self.name + (f"@{self.alias}" if self.alias else f"/{self.version}" if self.version else "")


@dataclass(frozen=True)
class VersionInfo:
    """One version of a registered model: its aliases, whether its registration completed, where it came from."""

    name: str
    version: str
    aliases: tuple[str, ...]
    status: str | None
    run_id: str | None
    source: str
    created: datetime | None
    description: str | None
    job_id: str | None

    @property
    def uri(self) -> str:
        """`models:/NAME/VERSION`."""
        return f"models:/{self.name}/{self.version}"

    @property
    def ready(self) -> bool:
        """True when the registration completed (only such versions load)."""
        return self.status == "ready"


@dataclass(frozen=True)
class ModelInfo:
    """A registered model: its aliases (alias → version), versions and newest version."""

    name: str
    description: str | None
    aliases: dict[str, str]
    versions: int
    latest_version: str | None
    updated: datetime | None


@dataclass(frozen=True)
class DatasetInputInfo:
    """A data set recorded as an input of the training run (MLflow dataset inputs)."""

    name: str
    digest: str
    context: str | None
    source: str
    profile: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class VersionDetails:
    """A version with its training run: params, latest metrics, evaluation scores by suite, data set inputs."""

    version: VersionInfo
    run_name: str | None = None
    run_status: str | None = None
    experiment: str | None = None
    params: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    evals: dict[str, dict[str, float]] = field(default_factory=dict)
    datasets: list[DatasetInputInfo] = field(default_factory=list)


def parse_model_ref(text: str) -> ModelRef:
    """`NAME`, `NAME@ALIAS`, `NAME/VERSION` (or `models:/...`) taken apart; raises RegistryError."""
    match = _REF.match(text.strip())
    version = match["version"] if match else None
    if match is None or (version is not None and not (version.isdigit() or version.lower() == "latest")):
        raise RegistryError(
            f"model: got {text!r}, must be NAME, NAME@ALIAS or NAME/VERSION (a number); "
            "e.g. mor-agent@champion or mor-agent/3"
        )
    return ModelRef(match["name"], match["alias"], None if version in (None, "latest") else version)


def _when(milliseconds: int | None) -> datetime | None:
    return datetime.fromtimestamp(milliseconds / 1000, UTC) if milliseconds else None


def _version_info(version: ModelVersion, aliases: dict[str, str]) -> VersionInfo:
    number = str(version.version)
    tags = version.tags or {}
    return VersionInfo(
        name=version.name,
        version=number,
        aliases=tuple(sorted(alias for alias, target in aliases.items() if str(target) == number)),
        status=tags.get(STATUS_TAG),
        run_id=version.run_id or None,
        source=version.source or "",
        created=_when(version.creation_timestamp),
        description=version.description or None,
        job_id=tags.get(JOB_ID_TAG),
    )


def _aliases(client: MlflowClient, name: str) -> dict[str, str]:
    try:
        return {alias: str(version) for alias, version in (client.get_registered_model(name).aliases or {}).items()}
    except MlflowException as exc:
        raise RegistryError(
            f"model: {name!r} is not a registered model of {client.tracking_uri}; `mor model list` lists them"
        ) from exc


def _all_versions(client: MlflowClient, name: str) -> list[ModelVersion]:
    escaped = name.replace("'", "\\'")
    found: list[ModelVersion] = []
    token: str | None = None
    while True:
        page = client.search_model_versions(f"name = '{escaped}'", page_token=token)
        found.extend(page)
        token = page.token
        if not token:
            return found


def list_models(settings: Settings) -> list[ModelInfo]:
    """Every registered model of the store, by name."""
    client = tracking_client(settings)
    models = []
    token: str | None = None
    while True:
        page = client.search_registered_models(order_by=["name ASC"], page_token=token)
        for model in page:
            versions = [int(v.version) for v in _all_versions(client, model.name)]
            models.append(
                ModelInfo(
                    name=model.name,
                    description=model.description or None,
                    aliases={alias: str(version) for alias, version in (model.aliases or {}).items()},
                    versions=len(versions),
                    latest_version=str(max(versions)) if versions else None,
                    updated=_when(model.last_updated_timestamp),
                )
            )
        token = page.token
        if not token:
            return models


def list_versions(settings: Settings, name: str) -> list[VersionInfo]:
    """The versions of registered model `name`, newest first."""
    client = tracking_client(settings)
    aliases = _aliases(client, name)
    versions = [_version_info(version, aliases) for version in _all_versions(client, name)]
    return sorted(versions, key=lambda info: int(info.version), reverse=True)


def find_version(settings: Settings, ref: ModelRef) -> VersionInfo:
    """The version `ref` names (`NAME` alone: the newest complete one); raises RegistryError naming what exists."""
    client = tracking_client(settings)
    aliases = _aliases(client, ref.name)
    if ref.alias is not None:
        if ref.alias not in aliases:
            known = ", ".join(f"@{alias} → {version}" for alias, version in sorted(aliases.items())) or "none"
            raise RegistryError(
                f"model: {ref} — {ref.name!r} has no alias {ref.alias!r} (its aliases: {known}); set it with "
                f"`mor model promote {ref.name} VERSION --alias {ref.alias}`"
            )
        number = aliases[ref.alias]
    elif ref.version is not None:
        number = ref.version
    else:
        ready = [v for v in _all_versions(client, ref.name) if (v.tags or {}).get(STATUS_TAG) == "ready"]
        if not ready:
            raise RegistryError(f"model: {ref.name!r} has no complete version yet; train and register one first")
        number = str(max(int(v.version) for v in ready))
    try:
        version = client.get_model_version(ref.name, number)
    except MlflowException as exc:
        numbers = sorted(int(v.version) for v in _all_versions(client, ref.name))
        raise RegistryError(
            f"model: {ref} — {ref.name!r} has no version {number} (its versions: "
            f"{', '.join(map(str, numbers)) or 'none'})"
        ) from exc
    return _version_info(version, aliases)


def _eval_scores(metrics: dict[str, float]) -> dict[str, dict[str, float]]:
    """`eval/<suite>/<name>` and `eval/<suite>/<variant>/<name>` metrics by `<suite>` or `<suite>/<variant>`."""
    scores: dict[str, dict[str, float]] = {}
    for key, value in metrics.items():
        if not key.startswith(EVAL_PREFIX):
            continue
        parts = key.removeprefix(EVAL_PREFIX).split("/")
        # A metric name may itself hold one '/' (accuracy/<category>, failures/<role>): the suite is the first part;
        # a variant (e.g. untrained) is a second part that is not a metric family.
        families = ("accuracy", "failures", "reasons", "summary")
        if len(parts) >= 3 and parts[1] not in families:
            group, name = f"{parts[0]}/{parts[1]}", "/".join(parts[2:])
        else:
            group, name = parts[0], "/".join(parts[1:])
        scores.setdefault(group, {})[name] = value
    return scores


def _datasets(run: Any) -> list[DatasetInputInfo]:
    inputs = getattr(run, "inputs", None)
    found = []
    for entry in getattr(inputs, "dataset_inputs", None) or []:
        dataset = entry.dataset
        tags = {tag.key: tag.value for tag in entry.tags or []}
        try:
            source = json.loads(dataset.source).get("uri", dataset.source)
        except (ValueError, AttributeError):
            source = dataset.source
        try:
            profile = json.loads(dataset.profile) if dataset.profile else {}
        except ValueError:
            profile = {"profile": dataset.profile}
        found.append(
            DatasetInputInfo(
                name=dataset.name,
                digest=dataset.digest,
                context=tags.get("mlflow.data.context"),
                source=str(source),
                profile=profile if isinstance(profile, dict) else {"profile": profile},
            )
        )
    return found


def describe_version(settings: Settings, ref: ModelRef) -> VersionDetails:
    """The version `ref` names, with its training run's params, metrics, evaluation scores and data set inputs."""
    version = find_version(settings, ref)
    if version.run_id is None:
        return VersionDetails(version=version)
    client = tracking_client(settings)
    try:
        run = client.get_run(version.run_id)
    except MlflowException:
        return VersionDetails(version=version)  # the run was deleted: the version still says what it can
    try:
        experiment = client.get_experiment(run.info.experiment_id).name
    except MlflowException:
        experiment = None
    metrics = dict(run.data.metrics)
    return VersionDetails(
        version=version,
        run_name=run.info.run_name,
        run_status=run.info.status,
        experiment=experiment,
        params=dict(sorted(run.data.params.items())),
        metrics={key: value for key, value in sorted(metrics.items()) if not key.startswith(EVAL_PREFIX)},
        evals=_eval_scores(metrics),
        datasets=_datasets(run),
    )


def job_runs(settings: Settings, job_id: str) -> list[tuple[str, str]]:
    """`(run id, status)` of the MLflow runs of Ray job `job_id` (tagged `mor.job_id`), oldest first."""
    client = tracking_client(settings)
    experiments = client.search_experiments()
    if not experiments:
        return []
    escaped = job_id.replace("'", "\\'")
    runs = client.search_runs(
        [experiment.experiment_id for experiment in experiments],
        filter_string=f"tags.`{JOB_ID_TAG}` = '{escaped}'",
        order_by=["attributes.start_time ASC"],
    )
    return [(run.info.run_id, run.info.status) for run in runs]
