"""Named, versioned data sets written by `kind: data` jobs, and read back by train jobs (`{dataset: NAME@VERSION}`).

```
<datasets dir>/<name>/<version>/   (versions 1, 2, ...; written once, never changed)
    manifest.json     name, version, creation time, the data spec, counts per source, role and drop reason,
                      and (when rendered) the samples' tokenizer, roles, max_seq_len and token statistics
    train.jsonl  test.jsonl  tools.json     the trajectories (unified format)
    samples.parquet  tokenizer/     the training trajectories rendered as role samples, and the tokenizer used
    report.json  malformed.jsonl  dropped.jsonl     what the data stage read, dropped and why
```
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mor.data.io import iter_trajectories, read_tools, read_trajectories
from mor.data.schema import Tool, Trajectory
from mor.spec.sections import DATASET_REF_PATTERN

__all__ = [
    "DATASET_DIRS",
    "DATASET_FILES",
    "DatasetRef",
    "StoredDataset",
    "publish_dataset",
    "read_dataset",
    "resolve_dataset",
]

#: The files a stored version holds (those present in the prepared data set are copied).
DATASET_FILES: tuple[str, ...] = (
    "train.jsonl",
    "test.jsonl",
    "tools.json",
    "report.json",
    "malformed.jsonl",
    "dropped.jsonl",
    "samples.parquet",
)
#: Directories a stored version holds (copied when present).
DATASET_DIRS: tuple[str, ...] = ("tokenizer",)
_REF = re.compile(DATASET_REF_PATTERN)


@dataclass(frozen=True)
class DatasetRef:
    """`NAME`, `NAME@latest` or `NAME@VERSION`."""

    name: str
    version: int | None  # None: the latest

    @classmethod
    def parse(cls, text: str) -> DatasetRef:
        """Read a reference; raises `ValueError` naming the expected form."""
        text = text.strip()
        if _REF.match(text) is None:
            raise ValueError(f"dataset: got {text!r}, expected NAME or NAME@VERSION, e.g. glaive-mix@2")
        name, _, version = text.partition("@")
        return cls(name, None if version in ("", "latest") else int(version))

    def __str__(self) -> str:
        return self.name if self.version is None else f"{self.name}@{self.version}"


@dataclass(frozen=True)
class StoredDataset:
    """One stored version: where it is and its manifest."""

    name: str
    version: int
    directory: Path
    manifest: dict[str, Any]


def _versions(datasets_dir: Path, name: str) -> list[int]:
    root = datasets_dir / name
    if not root.is_dir():
        return []
    return sorted(int(p.name) for p in root.iterdir() if p.name.isdigit() and (p / "manifest.json").is_file())


def resolve_dataset(reference: str | DatasetRef, datasets_dir: Path) -> StoredDataset:
    """The stored version a reference names; raises `FileNotFoundError` listing what exists."""
    ref = DatasetRef.parse(reference) if isinstance(reference, str) else reference
    versions = _versions(datasets_dir, ref.name)
    if not versions:
        known = sorted(p.name for p in datasets_dir.iterdir() if p.is_dir()) if datasets_dir.is_dir() else []
        raise FileNotFoundError(
            f"dataset: no data set named {ref.name!r} in {datasets_dir} (known: {known or 'none'}); write one with a "
            "kind: data job"
        )
    version = versions[-1] if ref.version is None else ref.version
    if version not in versions:
        raise FileNotFoundError(f"dataset: {ref.name} has versions {versions}, not {version}")
    directory = datasets_dir / ref.name / str(version)
    manifest = json.loads((directory / "manifest.json").read_text())
    return StoredDataset(ref.name, version, directory, manifest)


def read_dataset(stored: StoredDataset) -> tuple[list[Tool], list[Trajectory], list[Trajectory]]:
    """Tools, train and held-out test trajectories of a stored version."""
    directory = stored.directory
    tools = read_tools(directory / "tools.json") if (directory / "tools.json").is_file() else []
    return tools, read_trajectories(directory / "train.jsonl"), read_trajectories(directory / "test.jsonl")


def _counts(directory: Path) -> dict[str, Any]:
    """Trajectories per part, training trajectories per source, turns per role and missing parts, streamed."""
    test = sum(1 for _ in iter_trajectories(directory / "test.jsonl"))
    train = 0
    by_source: Counter[str] = Counter()
    roles: Counter[str] = Counter()
    missing: Counter[str] = Counter()
    for trajectory in iter_trajectories(directory / "train.jsonl"):
        train += 1
        by_source[trajectory.metadata.source] += 1
        roles.update(turn.role for turn in trajectory.turns)
        missing.update(getattr(trajectory.metadata, "missing", None) or [])
    return {
        "train": train,
        "test": test,
        "by_source": dict(by_source),
        "turns_by_role": dict(roles),
        "missing": dict(missing),
    }


def publish_dataset(
    prepared_dir: Path,
    datasets_dir: Path,
    name: str,
    *,
    data_spec: Mapping[str, Any],
    extra: Mapping[str, Any] | None = None,
) -> StoredDataset:
    """Copy a prepared data set (`mor.data.prepare`) to the next version of `name`, with its manifest.

    Written in a staging directory and renamed into place, so a version is complete or absent; two jobs writing
    the same name at once get different versions.
    """
    root = datasets_dir / name
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=root))
    try:
        for file in DATASET_FILES:
            if (prepared_dir / file).is_file():
                shutil.copy2(prepared_dir / file, staging / file)
        for folder in DATASET_DIRS:
            if (prepared_dir / folder).is_dir():
                shutil.copytree(prepared_dir / folder, staging / folder)
        report = json.loads((staging / "report.json").read_text()) if (staging / "report.json").is_file() else {}
        manifest: dict[str, Any] = {
            "name": name,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "data": dict(data_spec),
            **_counts(staging),
            "sources": report.get("sources", []),
            **dict(extra or {}),
        }
        while True:
            version = (_versions(datasets_dir, name) or [0])[-1] + 1
            manifest["version"] = version
            (staging / "manifest.json").write_text(json.dumps(manifest, indent=2, ensure_ascii=False))
            try:
                os.rename(staging, root / str(version))
                break
            except OSError:
                if not (root / str(version)).exists():
                    raise  # another error than a concurrent writer taking this version
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return StoredDataset(name, version, root / str(version), manifest)
