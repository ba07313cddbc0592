"""Extension point for data sources: each source turns its own format into unified trajectories.

A source is a callable taking its options (from the spec) and returning a `SourceData`. The synthetic generator is
registered here; readers of public data (ToolBench, glaive-function-calling, ToolACE, xLAM, OpenAI messages) plug
in the same way: `register_source("glaive", read_glaive)` where `read_glaive(path=..., ...) -> SourceData`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from mor.data.schema import Tool, Trajectory
from mor.data.synthetic import generate_synthetic

__all__ = ["SourceData", "Source", "register_source", "source_names", "read_source"]


@dataclass
class SourceData:
    """What a source yields: its tools and its trajectories, split when the source splits (else all in train)."""

    tools: list[Tool] = field(default_factory=list)
    train: list[Trajectory] = field(default_factory=list)
    test: list[Trajectory] = field(default_factory=list)


class Source(Protocol):
    """A data source: options in, unified trajectories out."""

    def __call__(self, **options: Any) -> SourceData: ...


def _synthetic(**options: Any) -> SourceData:
    dataset = generate_synthetic(**options)
    return SourceData(tools=dataset.tools, train=dataset.train, test=dataset.test)


_SOURCES: dict[str, Source] = {"synthetic": _synthetic}


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
