"""Where the deployment files and the KubeRay CRDs are, and the versions the lock pins."""

from __future__ import annotations

from pathlib import Path

from packaging.utils import canonicalize_name
from packaging.version import Version

from lockfile import read_pins
from mor_testing import shared_path

__all__ = ["DEPLOY", "REPO", "kuberay_crds_dir", "locked_version", "relative"]

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"


def kuberay_crds_dir() -> Path:
    """The KubeRay v1.7.0 CRDs in ../shared beside the repository, read in place; skips the test when absent, and
    fails it under CI=true, where ../shared is laid beside the clone."""
    return shared_path("k8s/kuberay-v1.7.0/crds", "ray.io_rayclusters.yaml", "KubeRay CRDs")


def locked_version(name: str, lock: Path = REPO / "requirements" / "lock.txt") -> Version:
    """The version `lock` pins for package `name`."""
    return read_pins(lock)[canonicalize_name(name)].version


def relative(path: Path) -> str:
    """`path` relative to the repository (as problems name files), else as given."""
    try:
        return str(path.resolve().relative_to(REPO))
    except ValueError:
        return str(path)
