from __future__ import annotations

import json

from typer.testing import CliRunner

from mor.cli.main import app
from mor.store import current_revision, head_revision


def test_db_upgrade_current_and_downgrade(database_url: str) -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["db", "upgrade", "--url", database_url])
    assert result.exit_code == 0, result.output
    assert f"at revision {head_revision()}" in " ".join(result.output.split())
    assert current_revision(database_url) == head_revision()
    shown = json.loads(runner.invoke(app, ["db", "current", "--url", database_url, "--json"]).output)
    assert (shown["revision"], shown["head"]) == (head_revision(), head_revision())
    result = runner.invoke(app, ["db", "downgrade", "base", "--url", database_url])
    assert result.exit_code == 0, result.output
    assert current_revision(database_url) is None


def test_db_upgrade_reports_an_unreachable_database() -> None:
    url = "postgresql+psycopg://postgres@127.0.0.1:5432/mor_cli_no_such_database"
    result = CliRunner().invoke(app, ["db", "upgrade", "--url", url])
    assert result.exit_code == 1
    assert 'database "mor_cli_no_such_database" does not exist' in " ".join(result.output.split())
