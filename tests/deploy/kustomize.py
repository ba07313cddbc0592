"""Build a Kustomize directory in Python (no kustomize binary here): the subset deploy/k8s uses, and nothing else.

Supported kustomization keys: resources (files, or directories holding a kustomization.yaml), namespace, labels
(pairs, added to metadata.labels), images (name, newName, newTag, digest; every `containers` / `initContainers`
image at any depth, as kustomize's image transformer does), patches (JSON 6902 operation lists from `path` or
`patch`, selected by `target` kind / name), configMapGenerator (files, `key=file`, literals) with generatorOptions
disableNameSuffixHash. Any other key is an error naming the file, so an overlay cannot silently use a feature
whose effect this builder would not reproduce.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from deploy.paths import relative

__all__ = ["KustomizeError", "Resource", "apply_json_patch", "build", "load_documents"]

_KEYS = {
    "apiVersion",
    "kind",
    "resources",
    "namespace",
    "labels",
    "images",
    "patches",
    "configMapGenerator",
    "generatorOptions",
}
_CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition", "PersistentVolume"}


class KustomizeError(ValueError):
    """A kustomization that cannot be built; the message names the file and the key."""


@dataclass
class Resource:
    """One built object and the files it came from (its manifest, then each patch applied to it)."""

    body: dict[str, Any]
    origin: str

    @property
    def label(self) -> str:
        """`Kind name` of the object."""
        return f"{self.body.get('kind')} {self.body.get('metadata', {}).get('name')}"


def load_documents(path: Path) -> list[dict[str, Any]]:
    """The non-empty YAML documents of `path`; each must be a mapping."""
    try:
        documents = [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]
    except yaml.YAMLError as error:
        raise KustomizeError(f"{relative(path)}: YAML syntax error: {error}") from None
    for number, doc in enumerate(documents, start=1):
        if not isinstance(doc, dict):
            raise KustomizeError(f"{relative(path)}: document {number}: got {type(doc).__name__}, expected a mapping")
    return documents


def build(directory: Path) -> list[Resource]:
    """The objects `kubectl apply -k directory` would create, in order."""
    file = directory / "kustomization.yaml"
    if not file.is_file():
        raise KustomizeError(f"{relative(directory)}: no kustomization.yaml")
    where = relative(file)
    (spec,) = load_documents(file)
    unknown = sorted(set(spec) - _KEYS)
    if unknown:
        raise KustomizeError(
            f"{where}: {', '.join(unknown)}: unknown or unsupported key(s); supported: {sorted(_KEYS)}"
        )
    if spec.get("kind") != "Kustomization":
        raise KustomizeError(f"{where}: kind: got {spec.get('kind')!r}, expected Kustomization")
    resources: list[Resource] = []
    for entry in spec.get("resources", []):
        target = (directory / entry).resolve()
        if target.is_dir():
            resources.extend(build(target))
        elif target.is_file():
            resources.extend(Resource(doc, relative(target)) for doc in load_documents(target))
        else:
            raise KustomizeError(f"{where}: resources: {entry!r} names no file or directory")
    resources.extend(_generated(spec, directory, where))
    for number, patch in enumerate(spec.get("patches", [])):
        _patch(resources, patch, directory, f"{where}: patches[{number}]")
    for image in spec.get("images", []):
        for resource in resources:
            _set_image(resource.body, image, f"{where}: images")
    if "namespace" in spec:
        for resource in resources:
            if resource.body.get("kind") not in _CLUSTER_SCOPED:
                resource.body.setdefault("metadata", {})["namespace"] = spec["namespace"]
    for number, label in enumerate(spec.get("labels", [])):
        extra = sorted(set(label) - {"pairs", "includeSelectors", "includeTemplates"})
        if extra or label.get("includeSelectors") or label.get("includeTemplates"):
            raise KustomizeError(f"{where}: labels[{number}]: only pairs (metadata.labels) are supported")
        for resource in resources:
            resource.body.setdefault("metadata", {}).setdefault("labels", {}).update(label["pairs"])
    return resources


def _generated(spec: dict[str, Any], directory: Path, where: str) -> list[Resource]:
    options = spec.get("generatorOptions", {})
    if spec.get("configMapGenerator") and options != {"disableNameSuffixHash": True}:
        raise KustomizeError(f"{where}: generatorOptions: only disableNameSuffixHash: true is supported")
    generated = []
    for number, generator in enumerate(spec.get("configMapGenerator", [])):
        extra = sorted(set(generator) - {"name", "files", "literals"})
        if extra:
            raise KustomizeError(f"{where}: configMapGenerator[{number}]: {', '.join(extra)}: unsupported key(s)")
        data: dict[str, str] = {}
        sources: list[str] = []
        for item in generator.get("files", []):
            key, _, name = item.rpartition("=") if "=" in item else ("", "", item)
            path = (directory / name).resolve()
            if directory.resolve() not in path.parents:
                raise KustomizeError(f"{where}: configMapGenerator[{number}].files: {item!r} is outside the directory")
            if not path.is_file():
                raise KustomizeError(f"{where}: configMapGenerator[{number}].files: {item!r}: no such file")
            data[key or path.name] = path.read_text()
            sources.append(relative(path))
        for item in generator.get("literals", []):
            key, _, value = item.partition("=")
            data[key] = value
        body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": generator["name"]}, "data": data}
        origin = ", ".join(sources) or where
        generated.append(Resource(body, f"{origin} (configMapGenerator of {where})"))
    return generated


def _patch(resources: list[Resource], patch: dict[str, Any], directory: Path, where: str) -> None:
    extra = sorted(set(patch) - {"path", "patch", "target"})
    if extra or ("path" in patch) == ("patch" in patch):
        raise KustomizeError(f"{where}: give one of path or patch, and target ({', '.join(extra) or 'both/neither'})")
    source = relative(directory / patch["path"]) if "path" in patch else where
    text = (directory / patch["path"]).read_text() if "path" in patch else patch["patch"]
    operations = yaml.safe_load(text)
    if not isinstance(operations, list):
        raise KustomizeError(f"{source}: only JSON 6902 patches (a list of operations) are supported")
    target = patch.get("target", {})
    unsupported = sorted(set(target) - {"kind", "name"})
    if unsupported:
        raise KustomizeError(f"{where}: target: {', '.join(unsupported)}: unsupported; select by kind and name")
    chosen = [r for r in resources if _selected(r, target)]
    if not chosen:
        raise KustomizeError(f"{where}: target {target} matches no resource")
    for resource in chosen:
        try:
            resource.body = apply_json_patch(resource.body, operations)
        except KustomizeError as error:
            raise KustomizeError(f"{source}: {resource.label}: {error}") from None
        resource.origin += f" + {source}"


def _selected(resource: Resource, target: dict[str, str]) -> bool:
    facts = {"kind": resource.body.get("kind"), "name": resource.body.get("metadata", {}).get("name")}
    return all(facts[key] == value for key, value in target.items())


def _pointer(path: str) -> list[str]:
    if not path.startswith("/"):
        raise KustomizeError(f"path {path!r} must start with '/'")
    return [part.replace("~1", "/").replace("~0", "~") for part in path[1:].split("/")]


def _child(node: Any, part: str, path: str) -> Any:
    if isinstance(node, dict) and part in node:
        return node[part]
    if isinstance(node, list) and part.isdigit() and int(part) < len(node):
        return node[int(part)]
    raise KustomizeError(f"path {path}: {part!r} does not exist")


def apply_json_patch(document: dict[str, Any], operations: list[dict[str, Any]]) -> dict[str, Any]:
    """`document` with the RFC 6902 operations add, replace, remove and test applied (a new object)."""
    result = copy.deepcopy(document)
    for number, operation in enumerate(operations):
        op, path = operation.get("op"), operation.get("path", "")
        parts = _pointer(path)
        parent = result
        for part in parts[:-1]:
            parent = _child(parent, part, path)
        last = parts[-1]
        if op == "test":
            if _child(parent, last, path) != operation.get("value"):
                raise KustomizeError(f"operation {number}: test of {path} failed")
        elif op == "remove":
            _child(parent, last, path)
            del parent[int(last) if isinstance(parent, list) else last]
        elif op in ("add", "replace"):
            value = copy.deepcopy(operation["value"])
            if isinstance(parent, list):
                if op == "add" and last == "-":
                    parent.append(value)
                elif op == "add" and last.isdigit() and int(last) <= len(parent):
                    parent.insert(int(last), value)
                else:
                    _child(parent, last, path)
                    parent[int(last)] = value
            elif isinstance(parent, dict):
                if op == "replace":
                    _child(parent, last, path)
                parent[last] = value
            else:
                raise KustomizeError(f"operation {number}: path {path}: parent is not an object or array")
        else:
            raise KustomizeError(f"operation {number}: op {op!r} is not one of add, replace, remove, test")
    return result


def _set_image(node: Any, image: dict[str, str], where: str) -> None:
    extra = sorted(set(image) - {"name", "newName", "newTag", "digest"})
    if extra:
        raise KustomizeError(f"{where}: {', '.join(extra)}: unsupported key(s)")
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("containers", "initContainers") and isinstance(value, list):
                for container in value:
                    if isinstance(container, dict) and "image" in container:
                        container["image"] = _renamed(container["image"], image)
            _set_image(value, image, where)
    elif isinstance(node, list):
        for item in node:
            _set_image(item, image, where)


def _renamed(reference: str, image: dict[str, str]) -> str:
    name, tag = reference, None
    if "@" in name:
        name = name.split("@", 1)[0]
    elif ":" in name.rsplit("/", 1)[-1]:
        name, tag = name.rsplit(":", 1)
    if name != image["name"]:
        return reference
    new = image.get("newName", name)
    if image.get("digest"):
        return f"{new}@{image['digest']}"
    tag = image.get("newTag", tag)
    return f"{new}:{tag}" if tag else new
