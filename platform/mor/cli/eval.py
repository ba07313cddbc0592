"""`mor eval …`: score result files, run suites as Ray jobs, schedule them, follow and compare the results.

Each command lives in its own module: `eval_score` (score), `eval_run` (run), `eval_schedule` (schedule …),
`eval_results` (results, compare) and `eval_serve` (serve); `eval_common` holds what they share.
"""

from __future__ import annotations

import typer

from mor.cli.eval_results import compare_command, results_command
from mor.cli.eval_run import run_command
from mor.cli.eval_schedule import schedule_app
from mor.cli.eval_score import score_command
from mor.cli.eval_serve import serve_command

__all__ = ["eval_app", "schedule_app"]

eval_app = typer.Typer(
    help="Benchmark evaluations: score result files, run and schedule suites, follow results.", no_args_is_help=True
)
eval_app.command("score")(score_command)
eval_app.add_typer(schedule_app, name="schedule")
eval_app.command("run")(run_command)
eval_app.command("results")(results_command)
eval_app.command("compare")(compare_command)
eval_app.command("serve")(serve_command)
