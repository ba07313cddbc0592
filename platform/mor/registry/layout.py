"""The on-disk layout of a registered agent, shared by the registry upload and local directories.

```
mor_agent.json        manifest: format, base-model reference, roles, relative paths, file sizes and sha256
spec.yaml             the job spec that produced the agent
base/                 base weights (save_pretrained output); always present for builtin bases
adapters/<name>/      the adapter directories (opaque files written by mor.model): one per role for MoR, or one
                      serving every role (adapters/all: MoR without role split; adapters/lora: a plain PEFT LoRA)
tokenizer/            the tokenizer (save_pretrained output or tokenizer.json)
```

The manifest's `roles` lists the agent's roles in role-id order; without it (older manifests) the adapter names
are the roles.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

from mor.hashing import file_sha256
from mor.registry.errors import RegistryError

__all__ = [
    "ADAPTERS_DIR",
    "BASE_DIR",
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "MANIFEST_FILE",
    "SPEC_FILE",
    "TOKENIZER_DIR",
    "BaseModelRef",
    "LocalAgentDir",
    "SavesPretrained",
    "build_manifest",
    "check_inputs",
    "file_index",
    "materialize",
    "read_agent_dir",
    "write_agent_dir",
]

MANIFEST_FILE = "mor_agent.json"
FORMAT_NAME = "mor-agent"
FORMAT_VERSION = 1
SPEC_FILE = "spec.yaml"
BASE_DIR = "base"
ADAPTERS_DIR = "adapters"
TOKENIZER_DIR = "tokenizer"
_ROLE_NAME = re.compile(r"^[A-Za-z][\w\-]*$")
BaseKind = Literal["builtin", "path", "hub"]


@runtime_checkable
class SavesPretrained(Protocol):
    """Anything with Hugging Face's `save_pretrained(directory)` (models, tokenizers)."""

    def save_pretrained(self, save_directory: Any, *args: Any, **kwargs: Any) -> Any: ...


@dataclass(frozen=True)
class BaseModelRef:
    """Which base model an agent was trained on: a builtin config name, a local path, or a hub id."""

    kind: BaseKind
    name: str
    revision: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in ("builtin", "path", "hub"):
            raise RegistryError(f"base.kind: got {self.kind!r}, must be builtin, path or hub")
        if not self.name:
            raise RegistryError("base.name: got an empty name; e.g. BaseModelRef('builtin', 'tiny-llama')")

    def to_dict(self) -> dict[str, str | None]:
        """JSON-ready form."""
        return {"kind": self.kind, "name": self.name, "revision": self.revision}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BaseModelRef:
        """Inverse of `to_dict`."""
        return cls(kind=data["kind"], name=str(data["name"]), revision=data.get("revision"))


@dataclass(frozen=True)
class LocalAgentDir:
    """A registered agent on local disk: where each part is, plus its registry coordinates when known."""

    root: Path
    base: BaseModelRef
    adapters: dict[str, Path]
    tokenizer_dir: Path
    spec_path: Path
    base_weights_dir: Path | None = None
    model_name: str | None = None
    version: str | None = None
    run_id: str | None = None
    manifest: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def roles(self) -> list[str]:
        """The agent's role names in role-id order (the manifest's `roles`, else its adapter names)."""
        return list(self.manifest.get("roles") or self.adapters)

    @property
    def spec_text(self) -> str:
        """The spec YAML."""
        return self.spec_path.read_text()


def file_index(directory: Path, prefix: str) -> dict[str, dict[str, int | str]]:
    """`{prefix/relative/path: {"size": bytes, "sha256": hex}}` of every file under `directory`.

    Raises OSError when a file cannot be read (e.g. a dangling symlink).
    """
    index: dict[str, dict[str, int | str]] = {}
    for path in sorted(directory.rglob("*")):
        if path.is_dir():
            continue
        relative = path.relative_to(directory).as_posix()
        index[f"{prefix}/{relative}"] = {"size": path.stat().st_size, "sha256": file_sha256(path)}
    return index


def build_manifest(
    *,
    base: BaseModelRef,
    adapters: list[str],
    has_base_weights: bool,
    files: Mapping[str, Mapping[str, int | str]],
    model_name: str | None = None,
    run_id: str | None = None,
    roles: list[str] | None = None,
) -> dict[str, Any]:
    """The manifest of an agent directory: `adapters` names its adapter directories, `roles` the agent's roles
    (default: the adapter names, one adapter per role)."""
    return {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "model_name": model_name,
        "run_id": run_id,
        "base": base.to_dict(),
        "base_weights": BASE_DIR if has_base_weights else None,
        "roles": list(roles) if roles is not None else list(adapters),
        "adapters": {name: f"{ADAPTERS_DIR}/{name}" for name in adapters},
        "tokenizer": TOKENIZER_DIR,
        "spec": SPEC_FILE,
        "files": dict(sorted(files.items())),
    }


def check_inputs(
    *,
    base: BaseModelRef,
    adapters: Mapping[str, Path],
    tokenizer: Path | SavesPretrained,
    base_weights: Path | SavesPretrained | None,
    roles: list[str] | None = None,
) -> None:
    """Refuse bad agent parts before anything is written, listing every problem at once."""
    problems: list[str] = []
    if not adapters:
        problems.append("adapters: got no roles; pass {role: adapter directory}, e.g. {'reasoner': Path(...)}")
    for role, path in adapters.items():
        if not _ROLE_NAME.match(role):
            problems.append(f"adapters.{role}: role name must match {_ROLE_NAME.pattern}; e.g. 'executor'")
        if not Path(path).is_dir():
            problems.append(f"adapters.{role}: {path} is not a directory; pass the directory save_mor wrote")
    if roles is not None and (not roles or not all(_ROLE_NAME.match(role) for role in roles)):
        problems.append(f"roles: got {roles}, must name each role (matching {_ROLE_NAME.pattern}); e.g. ['executor']")
    if isinstance(tokenizer, str | os.PathLike) and not Path(tokenizer).is_dir():
        problems.append(f"tokenizer: {tokenizer} is not a directory; pass the tokenizer or its saved directory")
    if base.kind == "builtin" and base_weights is None:
        problems.append(
            f"base_weights: required for the builtin base {base.name!r} (its random init must be reproduced "
            "exactly); pass the base model or its save_pretrained directory"
        )
    if isinstance(base_weights, str | os.PathLike) and not Path(base_weights).is_dir():
        problems.append(f"base_weights: {base_weights} is not a directory; pass the save_pretrained directory")
    if problems:
        raise RegistryError("; ".join(problems))


def materialize(part: Path | SavesPretrained, scratch: Path) -> Path:
    """A directory holding `part`: the path itself, or `scratch` after `part.save_pretrained(scratch)`."""
    if isinstance(part, str | os.PathLike):
        return Path(part)
    if not isinstance(part, SavesPretrained):
        raise RegistryError(
            f"got a {type(part).__name__}, must be a directory or an object with save_pretrained(directory)"
        )
    scratch.mkdir(parents=True, exist_ok=True)
    part.save_pretrained(str(scratch))
    return scratch


def write_agent_dir(
    destination: Path,
    *,
    base: BaseModelRef,
    adapters: Mapping[str, Path],
    tokenizer: Path | SavesPretrained,
    spec_text: str,
    base_weights: Path | SavesPretrained | None = None,
    model_name: str | None = None,
    roles: list[str] | None = None,
) -> LocalAgentDir:
    """Write an agent directory without MLflow (same layout as a registered version); `destination` must not
    exist or be empty. `roles`: the agent's roles when the adapters are not one per role."""
    check_inputs(base=base, adapters=adapters, tokenizer=tokenizer, base_weights=base_weights, roles=roles)
    destination = Path(destination)
    if destination.exists() and any(destination.iterdir()):
        raise RegistryError(f"destination: {destination} is not empty; pass a new directory")
    destination.mkdir(parents=True, exist_ok=True)
    files: dict[str, dict[str, int | str]] = {}
    for role, path in adapters.items():
        shutil.copytree(path, destination / ADAPTERS_DIR / role)
        files |= file_index(destination / ADAPTERS_DIR / role, f"{ADAPTERS_DIR}/{role}")
    _copy_or_save(tokenizer, destination / TOKENIZER_DIR)
    files |= file_index(destination / TOKENIZER_DIR, TOKENIZER_DIR)
    if base_weights is not None:
        _copy_or_save(base_weights, destination / BASE_DIR)
        files |= file_index(destination / BASE_DIR, BASE_DIR)
    (destination / SPEC_FILE).write_text(spec_text)
    manifest = build_manifest(
        base=base,
        adapters=list(adapters),
        has_base_weights=base_weights is not None,
        files=files,
        model_name=model_name,
        roles=roles,
    )
    (destination / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2))
    return read_agent_dir(destination)


def read_agent_dir(
    root: Path,
    *,
    model_name: str | None = None,
    version: str | None = None,
    verify: bool = False,
) -> LocalAgentDir:
    """Open an agent directory: check its manifest and that every listed file is there with its size
    (and its sha256 when `verify`)."""
    root = Path(root)
    manifest_path = root / MANIFEST_FILE
    try:
        manifest = json.loads(manifest_path.read_text())
    except FileNotFoundError as exc:
        raise RegistryError(
            f"model: {root} has no {MANIFEST_FILE}, so it is not a mor agent directory; pass a directory written "
            "by register_agent/write_agent_dir or a models:/name@alias URI"
        ) from exc
    except ValueError as exc:
        raise RegistryError(f"model: {manifest_path} is not valid JSON ({exc})") from exc
    if manifest.get("format") != FORMAT_NAME or manifest.get("format_version") != FORMAT_VERSION:
        raise RegistryError(
            f"model: {manifest_path} has format {manifest.get('format')!r} version "
            f"{manifest.get('format_version')!r}, expected {FORMAT_NAME!r} version {FORMAT_VERSION}"
        )
    problems: list[str] = []
    for relative, meta in manifest.get("files", {}).items():
        path = root / relative
        if not path.is_file():
            problems.append(f"{relative}: missing")
        elif path.stat().st_size != meta["size"]:
            problems.append(f"{relative}: {path.stat().st_size} bytes, manifest says {meta['size']}")
        elif verify and file_sha256(path) != meta["sha256"]:
            problems.append(f"{relative}: sha256 differs from the manifest")
    if problems:
        raise RegistryError(f"model: {root} is incomplete or corrupt: " + "; ".join(problems))
    base_weights = manifest.get("base_weights")
    return LocalAgentDir(
        root=root,
        base=BaseModelRef.from_dict(manifest["base"]),
        adapters={role: root / relative for role, relative in manifest["adapters"].items()},
        tokenizer_dir=root / manifest["tokenizer"],
        spec_path=root / manifest["spec"],
        base_weights_dir=root / base_weights if base_weights else None,
        model_name=model_name or manifest.get("model_name"),
        version=version,
        run_id=manifest.get("run_id"),
        manifest=manifest,
    )


def _copy_or_save(part: Path | SavesPretrained, destination: Path) -> None:
    if isinstance(part, str | os.PathLike):
        shutil.copytree(part, destination)
    else:
        materialize(part, destination)
