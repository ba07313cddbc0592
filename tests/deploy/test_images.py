"""deploy/docker: the images install the README's pinned set (requirements/lock.txt with hashes), run as a non-root
user, copy only what exists and is not ignored; the CUDA image's torch and the MLflow server's boto3 agree with the
lock. (No container engine here: the Dockerfiles are read, and their install filter is run on the real lock.)"""

from __future__ import annotations

import fnmatch
import re
import subprocess
from pathlib import Path

import pytest

from deploy.paths import DEPLOY, REPO, locked_version
from lockfile import read_pins

DOCKER = DEPLOY / "docker"
LOCK = REPO / "requirements" / "lock.txt"


def _instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of a Dockerfile, continuation lines joined, comments dropped."""
    text = re.sub(
        r"\\\n", " ", "\n".join(line for line in dockerfile.read_text().splitlines() if not line.startswith("#"))
    )
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in text.splitlines() if line.strip()]


def _included(path: str, ignore_file: Path) -> bool:
    """Whether `path` (relative to the build context) survives a .dockerignore ('!' re-includes; last match wins)."""
    included = True
    for rule in ignore_file.read_text().splitlines():
        rule = rule.strip()
        if not rule or rule.startswith("#"):
            continue
        negate, pattern = rule.startswith("!"), rule.lstrip("!").rstrip("/")
        if fnmatch.fnmatch(path, pattern) or path.startswith(pattern + "/"):
            included = negate
    return included


@pytest.mark.parametrize("name", ["Dockerfile.cpu", "Dockerfile.cuda"])
def test_dockerfile_installs_the_lock_as_a_non_root_user(name: str) -> None:
    steps = _instructions(DOCKER / name)
    runs = " ".join(args for op, args in steps if op == "RUN")
    assert "--require-hashes" in runs and "requirements/lock.txt" in runs
    assert "runtime_env" not in runs
    users = [args for op, args in steps if op == "USER"]
    assert users[-1].split(":")[0] not in ("0", "root"), users
    assert users[-1].split(":")[0].isdigit(), "a numeric uid, so runAsNonRoot can be verified"
    for op, args in steps:
        if op == "FROM":
            assert ":latest" not in args
        if op == "COPY" and not args.startswith("--from"):
            for source in args.split()[:-1]:
                assert (REPO / source).exists(), f"{name}: COPY {source}: no such path"
                assert _included(source, DOCKER / f"{name}.dockerignore"), f"{name}: COPY {source} is ignored"


def test_cuda_image_takes_the_lock_without_its_cpu_torch() -> None:
    dockerfile = (DOCKER / "Dockerfile.cuda").read_text()
    (awk,) = re.findall(r"awk '([^']+)'", dockerfile)
    filtered = subprocess.run(["awk", awk, str(LOCK)], capture_output=True, text=True, check=True).stdout
    lock, rest = read_pins(LOCK), _pins_of(filtered)
    assert set(lock) - set(rest) == {"torch"} and set(rest) <= set(lock)
    assert all(rest[name] == lock[name] for name in rest), "every other pin kept with all its hashes"
    cuda = read_pins(DOCKER / "cuda-torch.txt")
    assert str(cuda["torch"].version) == str(locked_version("torch")).split("+")[0]
    assert "+" not in str(cuda["torch"].version), "the CUDA build from PyPI, not a local +cpu build"
    assert all(pin.hashes for pin in cuda.values())
    shared = set(cuda) & set(rest)
    assert shared and all(cuda[name].version == lock[name].version for name in shared)


def test_mlflow_server_adds_only_boto3_and_its_dependencies() -> None:
    extra, lock = read_pins(DOCKER / "mlflow-server.txt"), read_pins(LOCK)
    assert "boto3" in extra and all(pin.hashes for pin in extra.values())
    assert all(extra[name].version == lock[name].version for name in set(extra) & set(lock))
    assert " AS mlflow-server" in (DOCKER / "Dockerfile.cpu").read_text()


def _pins_of(text: str) -> dict:
    import tempfile

    with tempfile.NamedTemporaryFile("w", suffix=".txt") as handle:
        handle.write(text)
        handle.flush()
        return read_pins(Path(handle.name))
