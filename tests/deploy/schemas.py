"""Schema checks of Kubernetes objects, offline: built-in kinds against Kubernetes' own JSON schemas (the strict
variants bundled in the kubernetes-validate package), KubeRay kinds against the v1.7.0 CRDs in ../shared.

A CRD's openAPIV3Schema is checked as the API server would after defaulting and pruning: nulls are dropped first,
a required property that has a default is not required, and every object with `properties` and without
`x-kubernetes-preserve-unknown-fields` is closed, so a misspelt field is an error (the server would prune it
silently). The CRDs' CEL rules (x-kubernetes-validations) and the operator's own checks are not covered.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import jsonschema
import yaml

__all__ = ["KUBERNETES_VERSIONS", "builtin_problems", "crd_kinds", "crd_problems", "strip_nulls"]

#: Kubernetes versions the built-in kinds are checked against: an old supported release and the newest bundled.
KUBERNETES_VERSIONS = ("1.30.0", "1.37.0")


def strip_nulls(value: Any) -> Any:
    """`value` without null members (the API server drops them before validating)."""
    if isinstance(value, dict):
        return {k: strip_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [strip_nulls(v) for v in value]
    return value


def _field_path(path: Iterable[Any]) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(top level)"


def _describe(errors: Iterable[jsonschema.ValidationError]) -> list[str]:
    """One `field.path: problem` line per error; an unexpected key is named in the path itself."""
    problems = []
    for error in sorted(errors, key=lambda e: list(map(str, e.absolute_path))):
        if error.validator == "additionalProperties" and isinstance(error.instance, dict):
            allowed = set(error.schema.get("properties", {}))
            for key in sorted(set(error.instance) - allowed):
                problems.append(f"{_field_path([*error.absolute_path, key])}: unknown field {key!r}")
            continue
        if error.context:  # anyOf / oneOf: the most specific reason of each branch
            reasons = sorted({sub.message for sub in error.context})
            problems.append(f"{_field_path(error.absolute_path)}: {error.message} ({'; '.join(reasons)})")
            continue
        problems.append(f"{_field_path(error.absolute_path)}: {error.message}")
    return problems


# --- built-in kinds -------------------------------------------------------------------------------------------


@functools.cache
def _builtin_validator(kind: str, api_version: str, version: str) -> jsonschema.Validator | None:
    from kubernetes_validate.utils import schema_contents
    from referencing import Registry, Resource

    group = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
    folder = f"kubernetes-json-schema/v{version}-local-strict"
    try:
        schema = schema_contents(f"{folder}/{kind.lower()}-{group}.json", version)
    except FileNotFoundError:
        return None
    definitions = schema_contents(f"{folder}/_definitions.json", version)
    registry = Resource.from_contents(definitions) @ (Resource.from_contents(schema) @ Registry())
    return jsonschema.Draft202012Validator(schema, registry=registry)


def builtin_problems(body: dict[str, Any]) -> list[str] | None:
    """Schema problems of a built-in object against every version of KUBERNETES_VERSIONS (each problem once);
    None when Kubernetes has no schema for its kind (a custom resource)."""
    problems: list[str] = []
    for version in KUBERNETES_VERSIONS:
        validator = _builtin_validator(str(body.get("kind")), str(body.get("apiVersion")), version)
        if validator is None:
            return None
        for line in _describe(validator.iter_errors(body)):
            tagged = f"{line} (Kubernetes {version.rsplit('.', 1)[0]})"
            if not any(p.startswith(line) for p in problems):
                problems.append(tagged)
    return problems


@functools.cache
def _object_meta_validator() -> jsonschema.Validator:
    from kubernetes_validate.utils import schema_contents
    from referencing import Registry, Resource

    version = KUBERNETES_VERSIONS[-1]
    definitions = schema_contents(f"kubernetes-json-schema/v{version}-local-strict/_definitions.json", version)
    schema = {
        "$ref": "https://kubernetes.io/api/_definitions.json#/$defs/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
    }
    return jsonschema.Draft202012Validator(schema, registry=Resource.from_contents(definitions) @ Registry())


# --- KubeRay custom resources ---------------------------------------------------------------------------------


def _closed(schema: Any) -> Any:
    """The schema as the API server applies it: objects with properties closed, defaulted properties optional."""
    if isinstance(schema, list):
        return [_closed(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    result = {key: _closed(value) for key, value in schema.items() if key != "x-kubernetes-validations"}
    properties = result.get("properties")
    if isinstance(properties, dict):
        if "required" in result:
            result["required"] = [name for name in result["required"] if "default" not in properties.get(name, {})]
        if not schema.get("x-kubernetes-preserve-unknown-fields") and "additionalProperties" not in result:
            result["additionalProperties"] = False
    return result


@functools.cache
def _crd_validators(directory: Path) -> dict[tuple[str, str], jsonschema.Validator]:
    validators = {}
    for file in sorted(directory.glob("*.yaml")):
        crd = yaml.safe_load(file.read_text())
        group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
        for version in crd["spec"]["versions"]:
            if version["name"] == "v1":
                schema = _closed(version["schema"]["openAPIV3Schema"])
                validators[(f"{group}/v1", kind)] = jsonschema.Draft202012Validator(schema)
    return validators


def crd_kinds(directory: Path) -> set[tuple[str, str]]:
    """(apiVersion, kind) of every custom resource the CRDs in `directory` define (their v1 versions)."""
    return set(_crd_validators(directory))


def crd_problems(body: dict[str, Any], directory: Path) -> list[str] | None:
    """Schema problems of a custom resource against its CRD in `directory` (metadata against ObjectMeta); None when
    no CRD there defines its apiVersion and kind."""
    validator = _crd_validators(directory).get((str(body.get("apiVersion")), str(body.get("kind"))))
    if validator is None:
        return None
    body = strip_nulls(body)
    problems = _describe(validator.iter_errors(body))
    meta = _describe(_object_meta_validator().iter_errors(body.get("metadata", {})))
    return problems + [f"metadata.{line}" if not line.startswith("(") else f"metadata: {line}" for line in meta]
