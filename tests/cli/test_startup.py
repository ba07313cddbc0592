"""Start-up stays light: importing the `mor` command, and running `mor --help`, `mor job list` or `mor model --help`,
imports none of the heavy libraries; they are imported by the commands that use them. Counts, not times."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

#: Libraries (and mor packages) that cost seconds to import and that only some commands need.
HEAVY = (
    "torch",
    "transformers",
    "mlflow",
    "ray",
    "sqlalchemy",
    "alembic",
    "matplotlib",
    "mor.agent",
    "mor.evals.runner",
)


def _imported_after(code: str, env: dict[str, str] | None = None) -> list[str]:
    """The HEAVY modules in sys.modules after running `code` in a fresh interpreter."""
    probe = f"{code}\nimport json, sys\nprint(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, env=env)
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_importing_the_command_imports_no_heavy_library() -> None:
    assert _imported_after("import mor.cli.main") == []


@pytest.mark.parametrize(
    "args",
    [["--help"], ["--version"], ["job", "--help"], ["job", "list"], ["model", "--help"], ["cluster", "status"]],
    ids=" ".join,
)
def test_light_commands_import_no_heavy_library(args: list[str], tmp_path: object) -> None:
    code = (
        "from typer.testing import CliRunner\n"
        "from mor.cli.main import app\n"
        f"result = CliRunner().invoke(app, {args!r})\n"
        "assert result.exit_code in (0, 1), result.output\n"
    )
    env = {"MOR_HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}
    assert _imported_after(code, env) == []


def test_eval_is_imported_only_when_used() -> None:
    listed = _imported_after(
        "import sys\nfrom typer.testing import CliRunner\nfrom mor.cli.main import app\n"
        "assert 'eval ' in CliRunner().invoke(app, ['--help']).output\n"
        "assert 'mor.cli.eval' not in sys.modules\n"
    )
    assert listed == []
    used = _imported_after(
        "from typer.testing import CliRunner\nfrom mor.cli.main import app\n"
        "assert 'compare' in CliRunner().invoke(app, ['eval', '--help']).output\n"
    )
    assert "sqlalchemy" in used and not {"torch", "mlflow", "ray", "mor.agent"} & set(used)
