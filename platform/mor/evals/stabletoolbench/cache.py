"""The response cache of the virtual API server: one JSON file per API, keyed by canonical arguments.

Layout: `<root>/<category>/<tool>/<api>.json`, an object mapping the canonical JSON of a call's arguments (keys
sorted, no spaces) to the response object `{"error": "", "response": ...}`. Writes take an exclusive file lock and
replace the file atomically, so several server threads or processes may share one cache directory.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import tempfile
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from mor.evals.stabletoolbench.data import ApiRoute

__all__ = ["ResponseCache", "canonical_arguments"]

_UNSAFE = re.compile(r"[^A-Za-z0-9_\-]")


def canonical_arguments(arguments: Mapping[str, Any]) -> str:
    """The cache key of a call's arguments: JSON with sorted keys and no whitespace."""
    return json.dumps(arguments, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def _component(name: str) -> str:
    """A route name as a safe path component (route names are standardised identifiers already)."""
    safe = _UNSAFE.sub("_", name)
    return safe if safe.strip("_") else "_" + hashlib.sha1(name.encode("utf-8")).hexdigest()[:12]


class ResponseCache:
    """Cached API responses under `root` (e.g. `settings.cache_dir / "stabletoolbench"`)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root).expanduser()
        self._lock = threading.Lock()

    def path(self, route: ApiRoute) -> Path:
        """The JSON file holding the responses of `route`."""
        return self.root / _component(route.category) / _component(route.tool) / f"{_component(route.api)}.json"

    def _read(self, path: Path) -> dict[str, Any]:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (json.JSONDecodeError, UnicodeDecodeError):
            # A damaged file is treated as empty; the next write replaces it whole.
            return {}
        return data if isinstance(data, dict) else {}

    def get(self, route: ApiRoute, arguments: Mapping[str, Any]) -> dict[str, Any] | None:
        """The cached response of this call, or None."""
        value = self._read(self.path(route)).get(canonical_arguments(arguments))
        return value if isinstance(value, dict) else None

    def examples(self, route: ApiRoute, *, limit: int = 5) -> list[tuple[dict[str, Any], dict[str, Any]]]:
        """Up to `limit` cached (arguments, response) pairs of `route`, oldest first."""
        pairs: list[tuple[dict[str, Any], dict[str, Any]]] = []
        for key, value in self._read(self.path(route)).items():
            if len(pairs) >= limit:
                break
            try:
                arguments = json.loads(key)
            except json.JSONDecodeError:
                continue
            if isinstance(arguments, dict) and isinstance(value, dict):
                pairs.append((arguments, value))
        return pairs

    def put(self, route: ApiRoute, arguments: Mapping[str, Any], response: Mapping[str, Any]) -> None:
        """Store the response of this call (replacing any earlier one)."""
        path = self.path(route)
        path.parent.mkdir(parents=True, exist_ok=True)
        with self._lock, self._file_lock(path):
            entries = self._read(path)
            entries[canonical_arguments(arguments)] = dict(response)
            handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
            try:
                with os.fdopen(handle, "w", encoding="utf-8") as stream:
                    json.dump(entries, stream, ensure_ascii=False, indent=1)
                os.replace(temporary, path)
            except BaseException:
                Path(temporary).unlink(missing_ok=True)
                raise

    def count(self, route: ApiRoute | None = None) -> int:
        """Cached responses of `route`, or of every API when None."""
        paths = [self.path(route)] if route is not None else list(self.root.glob("*/*/*.json"))
        return sum(len(self._read(path)) for path in paths)

    @contextmanager
    def _file_lock(self, path: Path) -> Iterator[None]:
        lock_path = path.with_name(f".{path.name}.lock")
        with lock_path.open("a") as lock_file:
            fcntl.flock(lock_file.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock_file.fileno(), fcntl.LOCK_UN)
