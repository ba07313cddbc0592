"""Data sources: each turns its own format into unified trajectories, named as in a spec's `data.sources`.

A source is a callable taking its options (from the spec) and returning a `SourceData`. Registered here: the
synthetic generator, and every reader of `mor.data.readers` (options: `path`, an optional `limit`, and the
reader's own); `register_source` adds more.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from mor.data.readers import READERS, Malformed, read
from mor.data.schema import Tool, Trajectory
from mor.data.synthetic import generate_synthetic

__all__ = ["SourceData", "Source", "register_source", "source_names", "read_source"]


@dataclass
class SourceData:
    """What a source yields: its tools and its trajectories, split when the source splits (else all in train)."""

    tools: list[Tool] = field(default_factory=list)
    train: list[Trajectory] = field(default_factory=list)
    test: list[Trajectory] = field(default_factory=list)
    malformed: list[Malformed] = field(default_factory=list)  # records the source could not use, with reasons


class Source(Protocol):
    """A data source: options in, unified trajectories out."""

    def __call__(self, **options: Any) -> SourceData: ...


def _synthetic(**options: Any) -> SourceData:
    dataset = generate_synthetic(**options)
    return SourceData(tools=dataset.tools, train=dataset.train, test=dataset.test)


def _file_source(name: str) -> Source:
    """The source of reader `name`: every trajectory of `path` (up to `limit`) in train, malformed records apart."""

    def read_file_source(*, path: str, limit: int | None = None, **options: Any) -> SourceData:
        data = SourceData()
        for record in read(name, path, **{key: value for key, value in options.items() if value is not None}):
            if isinstance(record, Malformed):
                data.malformed.append(record)
                continue
            data.train.append(record)
            if limit is not None and len(data.train) >= limit:
                break
        return data

    return read_file_source


_SOURCES: dict[str, Source] = {"synthetic": _synthetic, **{name: _file_source(name) for name in READERS}}


def register_source(name: str, source: Source) -> None:
    """Make `source` available under `name` (a later registration of the same name replaces it)."""
    if not name.isidentifier():
        raise ValueError(f"source name: got {name!r}, must be an identifier, e.g. 'glaive'")
    _SOURCES[name] = source


def source_names() -> list[str]:
    """Names of the registered sources."""
    return sorted(_SOURCES)


def read_source(name: str, options: dict[str, Any] | None = None) -> SourceData:
    """Run the source `name` with `options`."""
    try:
        source: Callable[..., SourceData] = _SOURCES[name]
    except KeyError:
        raise ValueError(f"data source: got {name!r}, known sources: {source_names()}") from None
    return source(**(options or {}))
