"""`mor job …`: validate, submit and follow jobs on Ray."""

from __future__ import annotations

import shlex
import uuid
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from mor.cli.follow import render_progress, summary_from_logs, summary_table, untrained_level_evals
from mor.cli.render import print_spec_error, spec_table
from mor.cluster import (
    ClusterError,
    JobClient,
    ensure_local_cluster,
    find_local_cluster,
    follow_progress,
    job_runtime_env,
)
from mor.registry import end_open_runs
from mor.settings import Settings
from mor.spec import SpecError, load_spec

__all__ = ["job_app"]

job_app = typer.Typer(help="Validate, submit and follow jobs.", no_args_is_help=True)

#: Exit code of `mor job submit` when the job ran but its agent scored at or below the untrained base.
UNTRAINED_LEVEL_EXIT_CODE = 3

AddressOption = Annotated[
    str | None,
    typer.Option("--address", help="Ray dashboard address (http://host:8265); default RAY_ADDRESS or embedded Ray."),
]


def _quiet_ray_sdk() -> None:
    """Ray's job SDK logs its websocket life cycle at INFO; the CLI shows its own progress instead."""
    import logging

    for name in ("ray.dashboard.modules.job.sdk", "ray.dashboard.modules.dashboard_sdk"):
        logging.getLogger(name).setLevel(logging.WARNING)


def _client(address: str | None, console: Console, *, start: bool) -> tuple[JobClient, bool]:
    _quiet_ray_sdk()
    settings = Settings()
    if start:
        with console.status("Connecting to Ray (starting the embedded local cluster if needed)…"):
            cluster = ensure_local_cluster(settings, address)
    elif address or settings.ray_address:
        cluster = ensure_local_cluster(settings, address)
    else:
        found = find_local_cluster(settings)
        if found is None:
            raise ClusterError(
                f"no embedded Ray cluster is running for MOR_HOME={settings.resolved_home}; submit a job first "
                "(mor job submit SPEC) or pass --address / RAY_ADDRESS"
            )
        cluster = found
    return cluster.job_client(), cluster.local


def _fail(console: Console, error: Exception) -> typer.Exit:
    console.print(f"[bold red]Error:[/] {escape(str(error))}")
    return typer.Exit(1)


@job_app.command("validate")
def validate(spec: Annotated[Path, typer.Argument(help="YAML job spec.")]) -> None:
    """Check a job spec without running anything."""
    console = Console()
    try:
        parsed = load_spec(spec)
    except SpecError as error:
        print_spec_error(console, error)
        raise typer.Exit(2) from None
    console.print(spec_table(parsed, str(spec)))
    console.print(f"[green]{escape(str(spec))}: valid[/]")


@job_app.command("submit")
def submit(
    spec: Annotated[Path, typer.Argument(help="YAML job spec.")],
    address: AddressOption = None,
    wait: Annotated[bool, typer.Option("--wait/--no-wait", help="Follow the job until it ends.")] = True,
) -> None:
    """Validate a spec and submit it as a Ray job; follow its progress live."""
    console = Console()
    try:
        parsed = load_spec(spec)
    except SpecError as error:
        print_spec_error(console, error)
        raise typer.Exit(2) from None
    console.print(spec_table(parsed, str(spec)))
    settings = Settings()
    try:
        client, local = _client(address, console, start=True)
        job_id = f"mor-{parsed.name}-{uuid.uuid4().hex[:8]}"
        runtime_env = job_runtime_env(
            settings,
            local=local,
            env_vars={"MOR_JOB_SPEC": spec.read_text(), "MOR_JOB_SPEC_SOURCE": str(spec.resolve())},
        )
        client.submit(
            f"python -m mor.pipeline.run --job-id {shlex.quote(job_id)}",
            runtime_env=runtime_env,
            metadata={"mor.job": parsed.name, "mor.kind": parsed.kind},
            submission_id=job_id,
        )
    except ClusterError as error:
        raise _fail(console, error) from None
    console.print(f"Submitted job [bold]{job_id}[/] to {client.address}")
    if not wait:
        console.print(f"Follow it with: mor job logs {job_id} --follow")
        return
    render_progress(follow_progress(client, job_id), console)
    info = client.info(job_id)
    if info.status != "SUCCEEDED":
        end_open_runs(settings, job_id=job_id, status="FAILED")
        console.print(f"[bold red]Job {job_id} {info.status}[/]: {escape(info.message or '')}")
        console.print(f"See: mor job logs {job_id}")
        raise typer.Exit(1)
    summary = summary_from_logs(client.logs(job_id))
    if summary is not None:
        console.print(summary_table(summary, str(summary.get("tracking_uri") or settings.tracking_uri)))
        failed_evals = untrained_level_evals(summary)
        if failed_evals:
            console.print(
                f"[bold red]Job {job_id} ran to the end, but its agent is no better than the untrained "
                f"base[/] ({escape('; '.join(failed_evals))}). Training did not help on the held-out "
                "items: check the data, the learning rate and the installed versions "
                "(scripts/check-latest-deps)."
            )
            raise typer.Exit(UNTRAINED_LEVEL_EXIT_CODE)
    console.print(f"[green]Job {job_id} succeeded[/]")


@job_app.command("status")
def status(job_id: Annotated[str, typer.Argument(help="Job id.")], address: AddressOption = None) -> None:
    """Status of a job and its latest progress."""
    console = Console()
    try:
        client, _ = _client(address, console, start=False)
        info = client.info(job_id)
        logs = client.logs(job_id)
    except ClusterError as error:
        raise _fail(console, error) from None
    from mor.cluster import progress_from_logs

    events = progress_from_logs(logs)
    table = Table(show_header=False, title=f"job {job_id}")
    table.add_row("status", info.status)
    if info.message:
        table.add_row("message", escape(info.message))
    if events:
        last = events[-1]
        table.add_row("stage", f"{last.stage} {last.step}/{last.total or '?'}")
        for key in ("loss", "tokens_per_s"):
            if key in last.metrics:
                table.add_row(key, f"{last.metrics[key]:.4g}")
    summary = summary_from_logs(logs)
    for line in untrained_level_evals(summary) if summary is not None else []:
        table.add_row("[bold red]verdict[/]", f"[bold red]no better than the untrained base[/]: {escape(line)}")
    console.print(table)


@job_app.command("logs")
def logs(
    job_id: Annotated[str, typer.Argument(help="Job id.")],
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing until the job ends.")] = False,
    address: AddressOption = None,
) -> None:
    """Print a job's log."""
    console = Console()
    try:
        client, _ = _client(address, console, start=False)
        if follow:
            for line in client.tail_logs(job_id):
                print(line, flush=True)
        else:
            print(client.logs(job_id), end="")
    except ClusterError as error:
        raise _fail(console, error) from None


@job_app.command("list")
def list_jobs(address: AddressOption = None) -> None:
    """Jobs on the cluster, newest first."""
    console = Console()
    try:
        client, _ = _client(address, console, start=False)
        jobs = client.list()
    except ClusterError as error:
        raise _fail(console, error) from None
    table = Table(title="jobs")
    for column in ("id", "status", "job", "kind", "started"):
        table.add_column(column)
    for job in jobs:
        meta = job.metadata or {}
        started = _when(job.start_time)
        table.add_row(job.job_id, job.status, meta.get("mor.job", ""), meta.get("mor.kind", ""), started)
    console.print(table)


def _when(timestamp: float | None) -> str:
    if not timestamp:
        return ""
    seconds = timestamp / 1000 if timestamp > 1e11 else timestamp  # Ray reports milliseconds
    return datetime.fromtimestamp(seconds).isoformat(sep=" ", timespec="seconds")


@job_app.command("stop")
def stop(job_id: Annotated[str, typer.Argument(help="Job id.")], address: AddressOption = None) -> None:
    """Stop a running job."""
    console = Console()
    try:
        client, _ = _client(address, console, start=False)
        stopped = client.stop(job_id)
        if stopped:
            client.wait(job_id, timeout_s=60)
    except ClusterError as error:
        raise _fail(console, error) from None
    ended = end_open_runs(Settings(), job_id=job_id, status="KILLED")
    console.print(
        f"{job_id}: {'stopped' if stopped else 'already finished'}"
        + (f"; MLflow run(s) {', '.join(ended)} marked KILLED" if ended else "")
    )
