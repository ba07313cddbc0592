"""Readers of public tool-use formats into the unified trajectory format (conventions in `mor.data.readers.base`).

Each format is one module with one `read_<format>(path, **options)` function, looked up by name here and imported
on first use.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from importlib import import_module
from pathlib import Path
from typing import Any

from mor.data.readers.base import Malformed, expand_paths, iter_json_records, normalise_parameters
from mor.data.schema import Trajectory

__all__ = ["READERS", "Malformed", "expand_paths", "iter_json_records", "normalise_parameters", "read", "reader"]

#: format name -> "module:function" of its reader.
READERS: dict[str, str] = {
    "toolbench": "mor.data.readers.toolbench:read_toolbench",
    "glaive": "mor.data.readers.glaive:read_glaive",
    "sharegpt": "mor.data.readers.sharegpt:read_sharegpt",
    "openai_messages": "mor.data.readers.messages:read_openai_messages",
    "typed_messages": "mor.data.readers.messages:read_typed_messages",
    "toolace": "mor.data.readers.toolace:read_toolace",
    "xlam": "mor.data.readers.xlam:read_xlam",
}

Reader = Callable[..., Iterator[Trajectory | Malformed]]


def reader(name: str) -> Reader:
    """The reader of format `name`; raises `ValueError` naming the known formats."""
    try:
        module, function = READERS[name].split(":")
    except KeyError:
        raise ValueError(f"format: got {name!r}, known formats: {sorted(READERS)}") from None
    found: Any = getattr(import_module(module), function)
    return found


def read(name: str, path: str | Path, **options: Any) -> Iterator[Trajectory | Malformed]:
    """Every record of `path` in format `name`, as trajectories or `Malformed` reports."""
    return reader(name)(path, **options)
