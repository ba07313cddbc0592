"""The dependency direction holds, and `import platform` is still the standard library's module."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "platform" / "mor"

#: The dependency direction: a package (or top-level module) of `mor` imports only those of a lower layer, so
#: there is no cycle between packages. Function-local imports count too. A new package needs a layer here.
LAYERS: dict[str, int] = {
    "hashing": 0,
    "settings": 0,
    "model": 1,
    "store": 1,
    "registry": 1,
    "cluster": 1,
    "spec": 2,
    "data": 3,
    "base": 4,
    "agent": 5,
    "train": 6,
    "evals": 6,
    "serve": 6,
    "scheduler": 6,
    "pipeline": 7,
    "cli": 8,
}

# Which third-party heavyweights each package may import (directly).
FORBIDDEN: dict[str, set[str]] = {
    "model": {
        "ray",
        "mlflow",
        "sqlalchemy",
        "alembic",
        "mor.spec",
        "mor.train",
        "mor.registry",
        "mor.cli",
        "mor.store",
        "mor.serve",
        "mor.evals",
        "mor.agent",
        "mor.data",
    },
    "spec": {"ray", "mlflow", "sqlalchemy", "mor.train", "mor.registry", "mor.cli", "mor.store", "mor.serve"},
    "data": {"ray", "mlflow", "sqlalchemy", "mor.cli", "mor.store", "mor.registry"},
    "agent": {"mlflow", "sqlalchemy", "mor.cli", "mor.store", "mor.registry"},
    "train": {"mlflow", "sqlalchemy", "mor.cli", "mor.store"},
    "store": {"ray", "mlflow", "torch", "mor.cli"},
}
ONLY_IN: dict[str, set[str]] = {
    "mlflow": {"registry"},
    "sqlalchemy": {"store", "scheduler", "cli", "pipeline", "evals"},
}


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def _package_files(package: str) -> list[Path]:
    root = PACKAGE / package
    return sorted(root.rglob("*.py")) if root.is_dir() else []


def _owner(path: Path) -> str:
    return path.relative_to(PACKAGE).parts[0].removesuffix(".py")


def test_every_package_has_a_layer() -> None:
    entries = {_owner(path) for path in PACKAGE.glob("*") if path.suffix == ".py" or (path / "__init__.py").is_file()}
    assert entries - {"__init__", "__main__"} == set(LAYERS)


@pytest.mark.parametrize("package", sorted(LAYERS))
def test_package_imports_only_lower_layers(package: str) -> None:
    paths = _package_files(package) or [PACKAGE / f"{package}.py"]
    for path in paths:
        for name in _imports(path):
            if not name.startswith("mor."):
                continue
            target = name.split(".")[1]
            if target == package:
                continue
            assert target in LAYERS and LAYERS[target] < LAYERS[package], (
                f"{path.relative_to(PACKAGE)} imports {name}: mor.{package} (layer {LAYERS[package]}) may only import "
                f"packages of a lower layer, mor.{target} is in layer {LAYERS.get(target)}"
            )


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_does_not_import_what_it_must_not(package: str) -> None:
    for path in _package_files(package):
        for name in _imports(path):
            for forbidden in FORBIDDEN[package]:
                assert not (name == forbidden or name.startswith(forbidden + ".")), (
                    f"{path.relative_to(PACKAGE)} imports {name}; mor.{package} must not depend on {forbidden}"
                )


@pytest.mark.parametrize("library", sorted(ONLY_IN))
def test_library_only_imported_where_allowed(library: str) -> None:
    for path in sorted(PACKAGE.rglob("*.py")):
        owner = path.relative_to(PACKAGE).parts[0]
        for name in _imports(path):
            if name == library or name.startswith(library + "."):
                assert owner in ONLY_IN[library], f"{path.relative_to(PACKAGE)} imports {library}"


@pytest.mark.parametrize("cwd", [Path("/"), PACKAGE.parents[1]])
def test_import_platform_is_the_standard_library(cwd: Path) -> None:
    code = "import platform, mor, sysconfig; print(platform.__file__); print(platform.python_version())"
    out = subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, check=True).stdout
    stdlib = Path(__import__("sysconfig").get_paths()["stdlib"]).resolve()
    assert Path(out.splitlines()[0]).resolve().parent == stdlib
    assert out.splitlines()[1].startswith("3.11")


def test_importing_mor_packages_needs_no_environment() -> None:
    code = "import mor.spec, mor.settings; print('ok')"
    env = {"PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.strip() == "ok"


def test_no_test_module_imports_ray_when_collected() -> None:
    """Ray reads its token settings once per process: a test module importing Ray at collection time makes the
    session's cluster fixture connect without them (every Ray test then fails with InvalidAuthToken)."""
    offenders = []
    for path in sorted((PACKAGE.parents[1] / "tests").rglob("*.py")):
        for node in ast.parse(path.read_text()).body:
            names = (
                [alias.name for alias in node.names]
                if isinstance(node, ast.Import)
                else ([node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            )
            if any(name == "ray" or name.startswith("ray.") for name in names):
                offenders.append(f"{path.name}:{node.lineno}")
    assert not offenders, f"import Ray inside the test (or under TYPE_CHECKING): {offenders}"
