"""The lock files pin what pyproject.toml asks for, agree with each other, carry hashes, and are what is installed.

`scripts/lock` regenerates them. The drift check (`scripts/check-latest-deps`) installs the newest allowed versions
instead of the lock and sets MOR_DEPS=latest, which skips only the check that the environment equals the lock.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from lockfile import installed_differences, read_pins

ROOT = Path(__file__).resolve().parents[1]
RUN_LOCK = ROOT / "requirements" / "lock.txt"
TEST_LOCK = ROOT / "requirements" / "test-lock.txt"


def _pins(path: Path) -> dict[str, tuple[Version, int]]:
    return {name: (pin.version, pin.hashes) for name, pin in read_pins(path).items()}


def _declared(extra: str | None = None) -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = project["dependencies"] if extra is None else project["optional-dependencies"][extra]
    return [Requirement(text) for text in names]


def _unsatisfied(requirements: list[Requirement], pins: dict[str, tuple[Version, int]]) -> list[str]:
    problems = []
    for requirement in requirements:
        if requirement.marker is not None and not requirement.marker.evaluate({"extra": ""}):
            continue
        pinned = pins.get(canonicalize_name(requirement.name))
        if pinned is None:
            problems.append(f"{requirement}: not in the lock")
        elif not requirement.specifier.contains(pinned[0], prereleases=True):
            problems.append(f"{requirement}: the lock pins {pinned[0]}")
    return problems


def test_locks_satisfy_pyproject() -> None:
    run, test = _pins(RUN_LOCK), _pins(TEST_LOCK)
    problems = _unsatisfied(_declared(), run) + _unsatisfied(_declared() + _declared("test"), test)
    assert not problems, "lock out of date with pyproject.toml (run scripts/lock): " + "; ".join(problems)


def test_locks_agree_and_every_pin_has_a_hash() -> None:
    run, test = _pins(RUN_LOCK), _pins(TEST_LOCK)
    assert set(run) <= set(test), f"only in lock.txt: {sorted(set(run) - set(test))}"
    differ = {name: (str(run[name][0]), str(test[name][0])) for name in run if run[name][0] != test[name][0]}
    assert not differ, f"lock.txt and test-lock.txt pin different versions: {differ}"
    unhashed = sorted(name for name, (_, hashes) in test.items() if hashes == 0)
    assert not unhashed, f"pins without hashes: {unhashed}"
    assert str(run["torch"][0]) == "2.13.0+cpu", "the lock must hold the CPU build of torch"


@pytest.mark.skipif(os.environ.get("MOR_DEPS") == "latest", reason="drift check: newest versions, not the lock")
def test_installed_packages_are_the_locked_versions() -> None:
    """What the tests run on is what the lock pins (so a fresh install gets exactly what CI tested)."""
    wrong = {
        name: f"locked {locked}, installed {installed}"
        for name, (locked, installed) in installed_differences(read_pins(TEST_LOCK)).items()
    }
    assert not wrong, f"install from requirements/test-lock.txt (README set-up): {wrong}"


def test_lock_reader_refuses_what_it_cannot_read(tmp_path: Path) -> None:
    lock = tmp_path / "lock.txt"
    lock.write_text("# header\nfoo==1.0 \\\n    --hash=sha256:" + "a" * 64 + "\n    # via bar\nbar>=2\n")
    with pytest.raises(ValueError, match=r"lock.txt:5: expected 'name==version'"):
        read_pins(lock)
    lock.write_text("Foo_Bar==1.0 \\\n    --hash=sha256:" + "a" * 64 + " \\\n    --hash=sha256:" + "b" * 64 + "\n")
    assert read_pins(lock)["foo-bar"].hashes == 2
