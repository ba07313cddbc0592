"""`mor cluster …`: look at and stop the embedded local Ray cluster of this MOR_HOME."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from mor.cluster import ClusterError, cluster_processes, find_local_cluster, stop_local_cluster
from mor.settings import Settings

__all__ = ["cluster_app"]

cluster_app = typer.Typer(
    help="The embedded local Ray cluster that `mor job submit` starts and keeps running under MOR_HOME.",
    no_args_is_help=True,
)


@cluster_app.command("status")
def status() -> None:
    """Show whether this MOR_HOME's embedded cluster runs, where, and how many of its jobs are active."""
    console = Console()
    settings = Settings()
    cluster = find_local_cluster(settings)
    if cluster is None:
        console.print(f"No embedded Ray cluster is running for MOR_HOME={escape(str(settings.resolved_home))}.")
        raise typer.Exit(0)
    try:
        jobs = cluster.job_client().list()
    except ClusterError as error:
        console.print(f"[bold red]Error:[/] {escape(str(error))}")
        raise typer.Exit(1) from None
    active = [job for job in jobs if not job.is_terminal]
    table = Table(show_header=False, title=f"embedded Ray of {escape(str(settings.resolved_home))}")
    table.add_row("dashboard", escape(cluster.dashboard_url))
    table.add_row("address", escape(cluster.address))
    table.add_row("CPUs", str(cluster.num_cpus) if cluster.num_cpus else "?")
    table.add_row("processes", str(len(cluster_processes(cluster.ray_dir)) if cluster.ray_dir else "?"))
    table.add_row("jobs", f"{len(jobs)} ({len(active)} active)")
    console.print(table)


@cluster_app.command("stop")
def stop(
    force: Annotated[bool, typer.Option("--force", help="Stop even while jobs are still running.")] = False,
) -> None:
    """Stop this MOR_HOME's embedded cluster (refuses while jobs run, unless --force)."""
    console = Console()
    settings = Settings()
    cluster = find_local_cluster(settings)
    if cluster is not None and not force:
        try:
            active = [job.job_id for job in cluster.job_client().list() if not job.is_terminal]
        except ClusterError:
            active = []  # the job server does not answer: nothing to protect, stopping is what is left
        if active:
            console.print(
                f"[bold red]Error:[/] {len(active)} job(s) still running ({escape(', '.join(active))}); "
                "stop them with `mor job stop ID`, or pass --force"
            )
            raise typer.Exit(1)
    if stop_local_cluster(settings):
        console.print(f"Stopped the embedded Ray cluster of MOR_HOME={escape(str(settings.resolved_home))}.")
    else:
        console.print(f"No embedded Ray cluster was running for MOR_HOME={escape(str(settings.resolved_home))}.")
