"""Promoting a version: point an alias (e.g. `champion`) at it, with MLflow's alias semantics — an alias names one
version at a time, so setting it moves it from the version it named before."""

from __future__ import annotations

from dataclasses import dataclass

from mlflow.exceptions import MlflowException

from mor.registry.agent import _check_names
from mor.registry.catalog import ModelRef, find_version
from mor.registry.client import tracking_client
from mor.registry.errors import RegistryError
from mor.settings import Settings

__all__ = ["AliasMove", "BadAliasRequest", "set_alias"]


class BadAliasRequest(RegistryError, ValueError):
    """A model name, version or alias that breaks a rule (not a state of the registry)."""


@dataclass(frozen=True)
class AliasMove:
    """Where an alias pointed before (`previous`, None when it was unset) and where it points now."""

    name: str
    alias: str
    version: str
    previous: str | None

    @property
    def uri(self) -> str:
        """`models:/NAME@ALIAS`."""
        return f"models:/{self.name}@{self.alias}"

    @property
    def changed(self) -> bool:
        """False when the alias already named this version."""
        return self.previous != self.version


def set_alias(settings: Settings, name: str, version: str, alias: str) -> AliasMove:
    """Point `alias` of registered model `name` at `version` (moving it from the version it named before).

    Refuses a bad alias, a missing version and a version whose registration did not complete (it could not be
    loaded), each with RegistryError naming the value and a fix.
    """
    try:
        _check_names(name, alias, "agent")
    except RegistryError as error:
        raise BadAliasRequest(str(error).replace("register.", "")) from None
    if not version.isdigit():
        raise BadAliasRequest(
            f"VERSION: got {version!r}, must be a version number; `mor model show {name}` shows the newest, "
            f"e.g. mor model promote {name} 3 --alias {alias}"
        )
    target = find_version(settings, ModelRef(name, version=version))
    if not target.ready:
        raise RegistryError(
            f"version {version} of {name!r} is tagged mor.status={target.status!r}, its registration did "
            "not complete and it cannot be loaded; promote a complete version (`mor model show "
            f"{name}` lists them)"
        )
    client = tracking_client(settings)
    try:
        previous = str(client.get_model_version_by_alias(name, alias).version)
    except MlflowException:
        previous = None
    try:
        client.set_registered_model_alias(name, alias, version)
    except MlflowException as exc:
        raise RegistryError(
            f"alias: setting {alias!r} on version {version} of {name!r} failed ({exc.message})"
        ) from exc
    return AliasMove(name=name, alias=alias, version=version, previous=previous)
