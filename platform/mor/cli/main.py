"""Entry point of the `mor` command.

Start-up stays light: the modules imported here import only typer, rich and mor's settings and cluster
plumbing; MLflow, SQLAlchemy, torch and Ray are imported inside the commands that use them, and `mor eval` is
imported only when it runs (see `mor.cli.help.MorGroup`). `tests/cli/test_startup.py` checks it.
"""

from __future__ import annotations

from typing import Annotated, ClassVar

import typer

from mor import __version__
from mor.cli.cluster import cluster_app
from mor.cli.data import data_app
from mor.cli.db import db_app
from mor.cli.help import LazyGroup, MorGroup
from mor.cli.job import job_app
from mor.cli.model import model_app
from mor.cli.serve import serve_command

__all__ = ["app"]


class _Mor(MorGroup):
    order: ClassVar[tuple[str, ...]] = ("job", "eval", "model", "serve", "data", "cluster", "db")
    lazy: ClassVar[dict[str, LazyGroup]] = {
        "eval": LazyGroup(
            "mor.cli.eval",
            "eval_app",
            "Benchmark evaluations: run and schedule suites, show, compare and plot results, score result files.",
        ),
    }


_HELP = (
    "Declarative agent tuning with Mixture-of-Roles: submit jobs to Ray, track in MLflow, evaluate, serve.\n\n"
    "The path of a model: `mor job submit jobs/quickstart.yaml` trains it and registers it as "
    "models:/mor-agent@candidate; `mor eval run SUITE --model models:/mor-agent@candidate` evaluates it; "
    "`mor model promote mor-agent VERSION --alias champion` promotes it; "
    "`mor serve models:/mor-agent@champion` serves it."
)

app = typer.Typer(name="mor", help=_HELP, no_args_is_help=True, pretty_exceptions_enable=False, cls=_Mor)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"mor {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", help="Print mor's version and exit.", callback=_print_version, is_eager=True),
    ] = False,
) -> None:
    pass


app.add_typer(job_app, name="job")
app.add_typer(model_app, name="model")
app.add_typer(db_app, name="db")
app.add_typer(data_app, name="data")
app.add_typer(cluster_app, name="cluster")
app.command("serve")(serve_command)

if __name__ == "__main__":
    app()
