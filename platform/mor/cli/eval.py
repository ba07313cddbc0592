"""`mor eval …`: score, run and schedule benchmark evaluations."""

from __future__ import annotations

import typer

from mor.cli.eval_score import score_command

__all__ = ["eval_app"]

eval_app = typer.Typer(help="Benchmark evaluations: score result files, run and schedule suites.", no_args_is_help=True)
eval_app.command("score")(score_command)
