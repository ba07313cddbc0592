"""`mor job …`: validate, submit and follow jobs on Ray."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from mor.cli.render import print_spec_error, spec_table
from mor.spec import SpecError, load_spec

__all__ = ["job_app"]

job_app = typer.Typer(help="Validate, submit and follow jobs.", no_args_is_help=True)


@job_app.command("validate")
def validate(spec: Path = typer.Argument(..., help="YAML job spec.")) -> None:
    """Check a job spec without running anything."""
    console = Console()
    try:
        parsed = load_spec(spec)
    except SpecError as error:
        print_spec_error(console, error)
        raise typer.Exit(2) from None
    console.print(spec_table(parsed, str(spec)))
    console.print(f"[green]{spec}: valid[/]")
