"""`mor cluster …`: look at and stop the embedded local Ray cluster of this MOR_HOME."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from mor.cli.render import JsonOption, make_console, print_json, print_table
from mor.cluster import ClusterError, cluster_processes, find_local_cluster, stop_local_cluster
from mor.settings import Settings

__all__ = ["cluster_app"]

cluster_app = typer.Typer(
    help="The embedded local Ray cluster that `mor job submit` starts and keeps running under MOR_HOME.",
    no_args_is_help=True,
)


@cluster_app.command("status")
def status(json_output: JsonOption = False) -> None:
    """Show whether this MOR_HOME's embedded cluster runs, where, and how many of its jobs are active."""
    console = make_console()
    settings = Settings()
    cluster = find_local_cluster(settings)
    if cluster is None:
        if json_output:
            print_json({"home": str(settings.resolved_home), "running": False})
            raise typer.Exit(0)
        console.print(f"No embedded Ray cluster is running for MOR_HOME={escape(str(settings.resolved_home))}.")
        raise typer.Exit(0)
    try:
        jobs = cluster.job_client().list()
    except ClusterError as error:
        console.print(f"[bold red]Error:[/] {escape(str(error))}")
        raise typer.Exit(1) from None
    active = [job for job in jobs if not job.is_terminal]
    processes = len(cluster_processes(cluster.ray_dir)) if cluster.ray_dir else None
    if json_output:
        print_json(
            {
                "home": str(settings.resolved_home),
                "running": True,
                "dashboard": cluster.dashboard_url,
                "address": cluster.address,
                "cpus": cluster.num_cpus,
                "processes": processes,
                "jobs": len(jobs),
                "active_jobs": [job.job_id for job in active],
            }
        )
        return
    table = Table(show_header=False, title=f"embedded Ray of {escape(str(settings.resolved_home))}")
    table.add_column("what", style="bold", no_wrap=True)
    table.add_column("value", no_wrap=True)
    table.add_row("dashboard", escape(cluster.dashboard_url))
    table.add_row("address", escape(cluster.address))
    table.add_row("CPUs", str(cluster.num_cpus) if cluster.num_cpus else "?")
    table.add_row("processes", str(processes) if processes is not None else "?")
    table.add_row("jobs", f"{len(jobs)} ({len(active)} active)")
    print_table(console, table)


@cluster_app.command("stop")
def stop(
    force: Annotated[bool, typer.Option("--force", help="Stop even while jobs are still running.")] = False,
) -> None:
    """Stop this MOR_HOME's embedded cluster (refuses while jobs run, unless --force)."""
    console = make_console()
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
