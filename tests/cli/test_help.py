"""Help in words: no Python types (`<bool>`, `<list[str]>`, `{model_uri}`) in any command's help, closed sets of values
listed, `--version`."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
import typer.main
from typer.core import TyperGroup
from typer.testing import CliRunner

from mor import __version__
from mor.cli.main import app

PYTHON_TYPES = re.compile(r"(?<=\s)(<(bool|str|int|float|path|list\[[a-z]+\])>|\{[a-z_]+\})(?=\s)")


def _commands() -> Iterator[list[str]]:
    root = typer.main.get_command(app)
    context = typer.core._click.Context(root)

    def walk(node: object, path: list[str]) -> Iterator[list[str]]:
        yield path
        if isinstance(node, TyperGroup):
            for name in node.list_commands(context):
                yield from walk(node.get_command(context, name), [*path, name])

    yield from walk(root, [])


COMMANDS = list(_commands())


@pytest.fixture(autouse=True)
def _wide(monkeypatch: pytest.MonkeyPatch) -> None:
    """Help and errors one line per entry (rich reads COLUMNS when not on a terminal)."""
    monkeypatch.setenv("COLUMNS", "250")


def _help(path: list[str]) -> str:
    result = CliRunner().invoke(app, [*path, "--help"], terminal_width=200)
    assert result.exit_code == 0, result.output
    return result.output


def test_every_command_is_reached() -> None:
    names = {" ".join(path) for path in COMMANDS}
    assert {"job status", "job logs", "eval show", "eval compare", "model list", "model show", "model promote"} <= names
    assert {"eval schedule add", "serve", "data inspect", "db upgrade"} <= names


@pytest.mark.parametrize("path", COMMANDS, ids=lambda path: " ".join(path) or "mor")
def test_help_names_no_python_type(path: list[str]) -> None:
    text = _help(path)
    assert PYTHON_TYPES.search(text) is None, PYTHON_TYPES.search(text)


@pytest.mark.parametrize(
    ("path", "choices"),
    [
        (["eval", "results"], "queued|running|succeeded|failed"),
        (["eval", "schedule", "add"], "skip|run_once|run_all"),
        (["eval", "run"], "cot|dfsdt"),
    ],
)
def test_closed_sets_list_their_values(path: list[str], choices: str) -> None:
    assert f" {choices} " in _help(path)


def test_a_value_outside_a_closed_set_is_refused_naming_the_values() -> None:
    result = CliRunner().invoke(app, ["eval", "results", "--status", "done"])
    assert result.exit_code == 2
    assert "'done' is not one of 'queued', 'running', 'succeeded', 'failed'" in " ".join(result.output.split())


def test_version() -> None:
    result = CliRunner().invoke(app, ["--version"])
    assert (result.exit_code, result.output) == (0, f"mor {__version__}\n")


def test_arguments_and_values_are_named_in_words() -> None:
    show = _help(["model", "show"])
    assert "Usage: mor model show [OPTIONS] NAME[@ALIAS|/VERSION]" in show
    status = _help(["job", "status"])
    assert "Usage: mor job status [OPTIONS] JOB_ID" in status and "--address URL" in " ".join(status.split())
    listed = " ".join(_help(["job", "list"]).split())
    assert "--limit N" in listed and "--json Print JSON" in listed
