"""Register a trained agent as an MLflow model version, and resolve `models:/...` URIs back to local files.

A version is created from the run's artifacts: the agent directory (see `mor.registry.layout`) is uploaded
under `<run artifacts>/<artifact_path>/` and the version's source is that artifact URI. The version is created
first, tagged `mor.status=pending`, so its number is reserved while the files upload; it is tagged `ready` and
gets the alias only after every file (manifest last) is in place. If any step fails, the version is deleted, the
uploaded files are removed, the alias keeps (or gets back) its previous target and a registered model created
by this call is deleted again: a failed registration leaves the registry as it was.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException

from mor.registry.client import tracking_client
from mor.registry.errors import RegistryError
from mor.registry.layout import (
    ADAPTERS_DIR,
    BASE_DIR,
    MANIFEST_FILE,
    SPEC_FILE,
    TOKENIZER_DIR,
    BaseModelRef,
    LocalAgentDir,
    SavesPretrained,
    build_manifest,
    check_inputs,
    file_index,
    materialize,
    read_agent_dir,
)
from mor.registry.tracking import TrackingSession
from mor.settings import Settings

__all__ = ["STATUS_TAG", "RegisteredAgent", "register_agent", "resolve_model", "unregister_agent"]

STATUS_TAG = "mor.status"
_MODEL_NAME = re.compile(r"^[A-Za-z0-9][\w.\-]*$")
_ALIAS = re.compile(r"^[A-Za-z_][\w\-]*$")
_MODELS_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:@(?P<alias>[^/]+)|/(?P<version>[^/]+))/?$")
_RUNS_URI = re.compile(r"^runs:/(?P<run_id>[^/]+)/(?P<path>.+?)/?$")


@dataclass(frozen=True)
class RegisteredAgent:
    """A registered agent version: its name, version, alias (if set), the run it came from and its source."""

    name: str
    version: str
    alias: str | None
    run_id: str
    source: str
    previous_alias_version: str | None = None
    created_model: bool = False

    @property
    def uri(self) -> str:
        """`models:/<name>/<version>`."""
        return f"models:/{self.name}/{self.version}"

    @property
    def alias_uri(self) -> str | None:
        """`models:/<name>@<alias>` when an alias was set."""
        return f"models:/{self.name}@{self.alias}" if self.alias else None


def register_agent(
    session: TrackingSession,
    *,
    model_name: str,
    base: BaseModelRef,
    adapters: Mapping[str, Path],
    tokenizer: Path | SavesPretrained,
    spec_text: str,
    base_weights: Path | SavesPretrained | None = None,
    alias: str | None = None,
    artifact_path: str = "agent",
    description: str | None = None,
    tags: Mapping[str, str] | None = None,
    roles: list[str] | None = None,
) -> RegisteredAgent:
    """Create version N of registered model `model_name` from the run of `session` and point `alias` at it.

    The version holds `base` (reference), `base_weights` (required for builtin bases: a model to
    `save_pretrained`, or its directory), `adapters/<name>/` for each adapter directory (one per role, or one
    serving every role: then `roles` names the agent's roles), the tokenizer (object or directory) and the spec.
    All or nothing: on failure the registry is left as it was and RegistryError says which step failed.
    """
    _check_names(model_name, alias, artifact_path)
    check_inputs(base=base, adapters=adapters, tokenizer=tokenizer, base_weights=base_weights, roles=roles)
    client = session.client
    run_id = session.run_id
    if client.list_artifacts(run_id, artifact_path):
        raise RegistryError(
            f"artifact_path: run {run_id} already has artifacts under {artifact_path!r}; "
            "pass another artifact_path (one per registration of a run)"
        )
    created_model = _ensure_registered_model(client, model_name)
    previous = _alias_target(client, model_name, alias)
    source = f"{session.artifact_uri.rstrip('/')}/{artifact_path}"
    version_tags = {STATUS_TAG: "pending", "mor.base.kind": base.kind, "mor.base.name": base.name}
    version_tags |= {str(k): str(v) for k, v in (tags or {}).items()}
    try:
        version = client.create_model_version(
            model_name, source, run_id=run_id, tags=version_tags, description=description
        )
    except MlflowException as exc:
        _drop_model_if_created(client, model_name, created_model)
        raise RegistryError(f"register_agent: creating a version of {model_name!r} failed: {exc}") from exc
    step = "starting"
    try:
        files: dict[str, dict[str, int | str]] = {}
        with tempfile.TemporaryDirectory(prefix="mor-register-") as scratch:
            for role, directory in adapters.items():
                step = f"uploading adapters/{role} from {directory}"
                files |= file_index(Path(directory), f"{ADAPTERS_DIR}/{role}")
                session.log_artifacts(directory, f"{artifact_path}/{ADAPTERS_DIR}/{role}")
            step = "saving and uploading the tokenizer"
            tokenizer_dir = materialize(tokenizer, Path(scratch) / TOKENIZER_DIR)
            files |= file_index(tokenizer_dir, TOKENIZER_DIR)
            session.log_artifacts(tokenizer_dir, f"{artifact_path}/{TOKENIZER_DIR}")
            if base_weights is not None:
                step = "saving and uploading the base weights"
                weights_dir = materialize(base_weights, Path(scratch) / BASE_DIR)
                files |= file_index(weights_dir, BASE_DIR)
                session.log_artifacts(weights_dir, f"{artifact_path}/{BASE_DIR}")
        step = "uploading the spec"
        session.log_text(spec_text, f"{artifact_path}/{SPEC_FILE}")
        step = "uploading the manifest"
        manifest = build_manifest(
            base=base,
            adapters=list(adapters),
            has_base_weights=base_weights is not None,
            files=files,
            model_name=model_name,
            run_id=run_id,
            roles=roles,
        )
        session.log_text(json.dumps(manifest, indent=2), f"{artifact_path}/{MANIFEST_FILE}")
        step = "marking the version ready"
        client.set_model_version_tag(model_name, version.version, STATUS_TAG, "ready")
        if alias:
            step = f"setting alias {alias!r}"
            client.set_registered_model_alias(model_name, alias, version.version)
    except BaseException as exc:
        alias_note, failures = _rollback(
            client, model_name, str(version.version), source, alias, previous, created_model
        )
        notes = "".join(f", {note}" for note in [alias_note, *failures] if note)
        raise RegistryError(
            f"register_agent: {step} failed ({type(exc).__name__}: {exc}); "
            f"version {version.version} of {model_name!r} was deleted{notes}; fix the cause and register again"
        ) from exc
    return RegisteredAgent(
        name=model_name,
        version=str(version.version),
        alias=alias,
        run_id=run_id,
        source=source,
        previous_alias_version=previous,
        created_model=created_model,
    )


def unregister_agent(session: TrackingSession, agent: RegisteredAgent) -> None:
    """Undo a registration that succeeded (e.g. when a later stage of the job failed).

    Deletes the version and its uploaded files, gives the alias back to the version it pointed at before
    (or removes it), and deletes the registered model when this registration had created it and no version is
    left. Raises RegistryError listing what could not be undone.
    """
    _, failures = _rollback(
        session.client,
        agent.name,
        agent.version,
        agent.source,
        agent.alias,
        agent.previous_alias_version,
        agent.created_model,
    )
    if failures:
        raise RegistryError(f"unregister_agent: version {agent.version} of {agent.name!r}: " + "; ".join(failures))


def resolve_model(uri: str, settings: Settings, *, destination: Path | None = None) -> LocalAgentDir:
    """Local files of an agent from `models:/name@alias`, `models:/name/version` (or `/latest`),
    `runs:/<run_id>/<path>` or a local agent directory.

    Registry versions are downloaded once into `settings.cache_dir/models/...` (or `destination`) and checked
    against their manifest (sizes and sha256).
    """
    models = _MODELS_URI.match(uri)
    if models is not None:
        client = tracking_client(settings)
        version = _lookup_version(client, models["name"], models["alias"], models["version"], uri)
        status = (version.tags or {}).get(STATUS_TAG)
        if status != "ready":
            raise RegistryError(
                f"model: {uri} is version {version.version} of {version.name}, tagged {STATUS_TAG}={status!r}; "
                "only complete registrations (ready) can be loaded; pick another version"
            )
        download_uri = client.get_model_version_download_uri(version.name, version.version)
        target = destination or _cache_dir(settings, "models", version.name, str(version.version))
        return _download(download_uri, target, settings, model_name=version.name, version=str(version.version))
    runs = _RUNS_URI.match(uri)
    if runs is not None:
        target = destination or _cache_dir(settings, "runs", runs["run_id"], runs["path"].replace("/", "_"))
        return _download(uri, target, settings, model_name=None, version=None)
    if uri.startswith("models:/") or uri.startswith("runs:/"):
        raise RegistryError(
            f"model: {uri!r} is not a valid URI; use models:/<name>@<alias>, models:/<name>/<version> or "
            "runs:/<run_id>/<artifact_path>; e.g. models:/mor-agent@candidate"
        )
    path = Path(uri.removeprefix("file://")).expanduser()
    if not path.is_dir():
        raise RegistryError(
            f"model: {uri!r} is neither a models:/ or runs:/ URI nor an existing directory; "
            "e.g. models:/mor-agent@candidate"
        )
    return read_agent_dir(path)


def _check_names(model_name: str, alias: str | None, artifact_path: str) -> None:
    problems = []
    if not _MODEL_NAME.match(model_name or ""):
        problems.append(
            f"register.model_name: got {model_name!r}, must match {_MODEL_NAME.pattern} (no '/' or ':'); e.g. mor-agent"
        )
    if alias is not None and (not _ALIAS.match(alias) or alias.lower() == "latest" or re.fullmatch(r"[vV]\d+", alias)):
        problems.append(
            f"register.alias: got {alias!r}, must be letters, digits, '_' or '-', not 'latest' or v<number>; "
            "e.g. candidate"
        )
    if not artifact_path or artifact_path.startswith("/") or ".." in artifact_path.split("/"):
        problems.append(f"artifact_path: got {artifact_path!r}, must be a relative path; e.g. agent")
    if problems:
        raise RegistryError("; ".join(problems))


def _ensure_registered_model(client: MlflowClient, name: str) -> bool:
    """Create registered model `name` if missing; True when this call created it."""
    try:
        client.get_registered_model(name)
        return False
    except MlflowException:
        pass
    try:
        client.create_registered_model(name)
        return True
    except MlflowException:
        client.get_registered_model(name)  # created concurrently: fine; otherwise this raises
        return False


def _alias_target(client: MlflowClient, name: str, alias: str | None) -> str | None:
    if not alias:
        return None
    try:
        return str(client.get_model_version_by_alias(name, alias).version)
    except MlflowException:
        return None


def _rollback(
    client: MlflowClient,
    name: str,
    version: str,
    source: str,
    alias: str | None,
    previous: str | None,
    created_model: bool,
) -> tuple[str | None, list[str]]:
    """Undo a registration: delete the version and its files, give the alias back, drop a model this
    registration created. Return where the alias stands now (None without alias) and what could not be undone.
    """
    failures: list[str] = []
    try:
        client.delete_model_version(name, version)
    except MlflowException as exc:
        failures.append(f"deleting the version failed ({exc.message}); delete it by hand")
    alias_note = None
    if alias:
        try:
            current = _alias_target(client, name, alias)
            # Only undo our own move: a later registration may have moved the alias on since.
            if current in (None, version):
                if previous is not None:
                    client.set_registered_model_alias(name, alias, previous)
                elif current is not None:
                    client.delete_registered_model_alias(name, alias)
            now = _alias_target(client, name, alias)
            alias_note = f"alias {alias!r} points at version {now}" if now else f"alias {alias!r} is unset"
        except MlflowException as exc:
            failures.append(f"restoring alias {alias!r} failed ({exc.message})")
    _drop_model_if_created(client, name, created_model)
    try:
        from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

        get_artifact_repository(source).delete_artifacts()
    except Exception as exc:  # noqa: BLE001 - leftovers are reported, not fatal
        failures.append(f"removing uploaded files at {source} failed ({exc})")
    return alias_note, failures


def _drop_model_if_created(client: MlflowClient, name: str, created_model: bool) -> None:
    if not created_model:
        return
    try:
        if not client.search_model_versions(f"name = '{name}'"):
            client.delete_registered_model(name)
    except MlflowException:
        pass


def _lookup_version(client: MlflowClient, name: str, alias: str | None, version: str | None, uri: str) -> ModelVersion:
    try:
        if alias is not None:
            return client.get_model_version_by_alias(name, alias)
        if version is not None and version.lower() == "latest":
            versions = client.search_model_versions(f"name = '{name}'")
            ready = [v for v in versions if (v.tags or {}).get(STATUS_TAG) == "ready"]
            if not ready:
                raise RegistryError(f"model: {uri}: {name!r} has no complete version yet; register one first")
            return max(ready, key=lambda v: int(v.version))
        if version is not None and not version.isdigit():
            raise RegistryError(f"model: {uri}: version {version!r} must be a number, 'latest' or use @alias")
        return client.get_model_version(name, str(version))
    except MlflowException as exc:
        raise RegistryError(
            f"model: {uri} was not found in {client.tracking_uri} ({exc.message}); "
            "check the name, version or alias (`mlflow ui` lists them)"
        ) from exc


def _cache_dir(settings: Settings, kind: str, *parts: str) -> Path:
    store = hashlib.sha256(settings.tracking_uri.encode()).hexdigest()[:10]
    return settings.cache_dir / kind / store / Path(*parts)


def _download(
    artifact_uri: str,
    target: Path,
    settings: Settings,
    *,
    model_name: str | None,
    version: str | None,
) -> LocalAgentDir:
    if (target / MANIFEST_FILE).is_file():
        return read_agent_dir(target, model_name=model_name, version=version)
    import mlflow.artifacts

    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        local = Path(
            mlflow.artifacts.download_artifacts(
                artifact_uri=artifact_uri, dst_path=str(staging), tracking_uri=settings.tracking_uri
            )
        )
        read_agent_dir(local, model_name=model_name, version=version, verify=True)
        if target.exists():
            shutil.rmtree(target)
        local.replace(target)
    except MlflowException as exc:
        raise RegistryError(f"model: downloading {artifact_uri} failed ({exc.message})") from exc
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return read_agent_dir(target, model_name=model_name, version=version)
