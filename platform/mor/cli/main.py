"""Entry point of the `mor` command."""

from __future__ import annotations

import typer

from mor.cli.cluster import cluster_app
from mor.cli.data import data_app
from mor.cli.db import db_app
from mor.cli.eval import eval_app
from mor.cli.job import job_app
from mor.cli.serve import serve_command

__all__ = ["app"]

app = typer.Typer(
    name="mor",
    help="Declarative agent tuning with Mixture-of-Roles: submit jobs to Ray, track in MLflow, evaluate, serve.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(job_app, name="job")
app.add_typer(eval_app, name="eval")
app.add_typer(db_app, name="db")
app.add_typer(data_app, name="data")
app.add_typer(cluster_app, name="cluster")
app.command("serve")(serve_command)

if __name__ == "__main__":
    app()
