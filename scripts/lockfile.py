"""Read the pins of a uv / pip-tools lock file, and compare them with what is installed.

`python scripts/lockfile.py drift requirements/test-lock.txt` prints, for every locked package whose installed
version differs, the locked and the installed version (what `scripts/check-latest-deps` reports).
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from packaging.utils import canonicalize_name
from packaging.version import Version

__all__ = ["Pin", "read_pins", "installed_differences"]

_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?==([^\s;\\]+)")
_HASH = re.compile(r"^\s+--hash=sha256:[0-9a-f]{64}\b")


@dataclass(frozen=True)
class Pin:
    """One locked package: canonical name, exact version and how many file hashes it carries."""

    name: str
    version: Version
    hashes: int


def read_pins(path: Path) -> dict[str, Pin]:
    """Canonical package name → its pin, for every `name==version` entry of the lock file at `path`."""
    pins: dict[str, Pin] = {}
    current: str | None = None
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        match = _PIN.match(line)
        if match:
            current = canonicalize_name(match.group(1))
            pins[current] = Pin(current, Version(match.group(3)), 0)
        elif current is not None and _HASH.match(line):
            pin = pins[current]
            pins[current] = Pin(pin.name, pin.version, pin.hashes + 1)
        elif line and not line.startswith((" ", "#")):
            raise ValueError(f"{path}:{number}: expected 'name==version' or a hash line, got {line!r}")
    return pins


def installed_differences(pins: dict[str, Pin]) -> dict[str, tuple[Version, Version | None]]:
    """Package → (locked, installed or None) for every pin the running environment does not match."""
    differences: dict[str, tuple[Version, Version | None]] = {}
    for name, pin in sorted(pins.items()):
        try:
            installed: Version | None = Version(metadata.version(name))
        except metadata.PackageNotFoundError:
            installed = None
        if installed != pin.version:
            differences[name] = (pin.version, installed)
    return differences


def _print_drift(lock: Path) -> int:
    differences = installed_differences(read_pins(lock))
    if not differences:
        print(f"every package matches {lock}")
        return 0
    width = max(len(name) for name in differences)
    print(f"{'package':<{width}}  {'locked':<14}  installed")
    for name, (locked, installed) in differences.items():
        print(f"{name:<{width}}  {str(locked):<14}  {installed if installed is not None else '(not installed)'}")
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] != "drift":
        sys.exit("usage: python scripts/lockfile.py drift LOCK_FILE")
    sys.exit(_print_drift(Path(sys.argv[2])))
