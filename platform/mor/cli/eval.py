"""`mor eval …`: run suites as Ray jobs, schedule them, show, compare and plot the results, score result files.

Each command lives in its own module: `eval_run` (run), `eval_schedule` (schedule …), `eval_results` (results,
compare), `eval_show` (show), `eval_score` (score) and `eval_serve` (serve); `eval_common` holds what they share.
`mor` imports this module only when an `eval` command runs (see `mor.cli.main`).
"""

from __future__ import annotations

import typer

from mor.cli.eval_results import compare_command, results_command
from mor.cli.eval_run import run_command
from mor.cli.eval_schedule import schedule_app
from mor.cli.eval_score import score_command
from mor.cli.eval_serve import serve_command
from mor.cli.eval_show import show_command

__all__ = ["eval_app", "schedule_app"]

eval_app = typer.Typer(
    help="Benchmark evaluations: run and schedule suites, show, compare and plot results, score result files.",
    no_args_is_help=True,
)
eval_app.command("run")(run_command)
eval_app.command("results")(results_command)
eval_app.command("show")(show_command)
eval_app.command("compare")(compare_command)
eval_app.add_typer(schedule_app, name="schedule")
eval_app.command("serve")(serve_command)
eval_app.command("score")(score_command)
