"""`mor job …`: validate, submit and follow jobs on Ray."""

from __future__ import annotations

import shlex
import uuid
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from mor.cli.follow import (
    latest_by_stage,
    progress_table,
    render_progress,
    summary_from_logs,
    summary_table,
    untrained_level_evals,
)
from mor.cli.joblog import clean_log
from mor.cli.render import JsonOption, make_console, print_json, print_spec_error, print_table, spec_table
from mor.cluster import (
    ClusterError,
    JobClient,
    JobInfo,
    ensure_local_cluster,
    find_local_cluster,
    follow_progress,
    job_runtime_env,
    progress_from_logs,
)
from mor.settings import Settings

__all__ = ["job_app"]

job_app = typer.Typer(help="Validate, submit and follow jobs.", no_args_is_help=True)

#: Exit code of `mor job submit` when the job ran but its agent scored at or below the untrained base.
UNTRAINED_LEVEL_EXIT_CODE = 3

AddressOption = Annotated[
    str | None,
    typer.Option(
        "--address",
        metavar="URL",
        help="Ray dashboard address (http://host:8265); default RAY_ADDRESS or this MOR_HOME's embedded Ray.",
    ),
]
JobIdArgument = Annotated[str, typer.Argument(help="Job id, as `mor job list` shows it.")]


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
    from mor.spec import SpecError, load_spec

    console = make_console()
    try:
        parsed = load_spec(spec)
    except SpecError as error:
        print_spec_error(console, error)
        raise typer.Exit(2) from None
    print_table(console, spec_table(parsed, str(spec)))
    console.print(f"[green]{escape(str(spec))}: valid[/]")


@job_app.command("submit")
def submit(
    spec: Annotated[Path, typer.Argument(help="YAML job spec.")],
    address: AddressOption = None,
    wait: Annotated[bool, typer.Option("--wait/--no-wait", help="Follow the job until it ends.")] = True,
) -> None:
    """Validate a spec and submit it as a Ray job; follow its progress live."""
    from mor.registry import end_open_runs
    from mor.spec import SpecError, load_spec

    console = make_console()
    try:
        parsed = load_spec(spec)
    except SpecError as error:
        print_spec_error(console, error)
        raise typer.Exit(2) from None
    print_table(console, spec_table(parsed, str(spec)))
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
        console.print(f"Follow it with: mor job status {job_id} --follow")
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
        print_table(console, summary_table(summary, str(summary.get("tracking_uri") or settings.tracking_uri)))
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


def _mlflow_runs(job_id: str) -> list[tuple[str, str]]:
    """The MLflow runs of a job still running (its summary, with the run id, comes at the end)."""
    from mor.registry import RegistryError
    from mor.registry.catalog import job_runs

    try:
        return job_runs(Settings(), job_id)
    except (RegistryError, OSError, ValueError):
        return []


def _status_data(info: JobInfo, logs: str) -> dict[str, Any]:
    events = latest_by_stage(progress_from_logs(logs))
    summary = summary_from_logs(logs)
    runs = [] if summary is not None or info.is_terminal else _mlflow_runs(info.job_id)
    return {
        "id": info.job_id,
        "status": info.status,
        "message": info.message,
        "job": info.metadata.get("mor.job"),
        "kind": info.metadata.get("mor.kind"),
        "started": _when(info.start_time),
        "ended": _when(info.end_time),
        "progress": [
            {"stage": e.stage, "step": e.step, "total": e.total, "metrics": e.metrics, "eta_s": e.eta_s} for e in events
        ],
        "mlflow_runs": [{"run_id": run_id, "status": status} for run_id, status in runs],
        "summary": summary,
    }


def _print_status(console: Console, data: dict[str, Any], events: list[Any]) -> None:
    table = Table(title=f"job {data['id']}", show_header=False)
    table.add_column("what", style="bold", no_wrap=True)
    table.add_column("value")
    colour = {"SUCCEEDED": "green", "FAILED": "red", "STOPPED": "yellow"}.get(data["status"], "cyan")
    table.add_row("status", f"[{colour}]{data['status']}[/]")
    if data["job"]:
        table.add_row("spec", f"{data['kind']} job {escape(str(data['job']))}")
    table.add_row("started", data["started"] or "—")
    if data["ended"]:
        table.add_row("ended", data["ended"])
    if data["message"]:
        table.add_row("message", escape(data["message"]))
    for run in data["mlflow_runs"]:
        table.add_row("MLflow run", f"{run['run_id']} ({run['status']})")
    print_table(console, table)
    if events and data["summary"] is None:
        print_table(console, progress_table(events))
    summary = data["summary"]
    if summary is not None:
        print_table(console, summary_table(summary, str(summary.get("tracking_uri") or Settings().tracking_uri)))
        for line in untrained_level_evals(summary):
            console.print(f"[bold red]verdict: no better than the untrained base[/]: {escape(line)}")
    elif data["status"] in ("FAILED", "STOPPED"):
        console.print(f"See: mor job logs {data['id']}")


@job_app.command("status")
def status(
    job_id: JobIdArgument,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Show live progress until the job ends, then the summary.")
    ] = False,
    address: AddressOption = None,
    json_output: JsonOption = False,
) -> None:
    """Where a job stands: its status, progress (loss, ETA) and MLflow run; when done, its summary.

    The summary names the registered version, the held-out accuracy, the MLflow run and what to run next.
    """
    console = make_console()
    try:
        client, _ = _client(address, console, start=False)
        info = client.info(job_id)
        if follow and not info.is_terminal and not json_output:
            render_progress(follow_progress(client, job_id), console)
            info = client.info(job_id)
        logs = client.logs(job_id)
    except ClusterError as error:
        raise _fail(console, error) from None
    data = _status_data(info, logs)
    if json_output:
        print_json(data)
        return
    _print_status(console, data, latest_by_stage(progress_from_logs(logs)))


@job_app.command("logs")
def logs(
    job_id: JobIdArgument,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing until the job ends.")] = False,
    raw: Annotated[
        bool,
        typer.Option(
            "--raw",
            help="The log exactly as Ray stored it, with the progress and summary lines mor reads and colour codes.",
        ),
    ] = False,
    address: AddressOption = None,
) -> None:
    """Print a job's log (without the progress protocol, colour codes and Ray's multi-cluster noise; see --raw)."""
    console = make_console()
    try:
        client, _ = _client(address, console, start=False)
        lines = client.tail_logs(job_id) if follow else iter(client.logs(job_id).splitlines())
        for line in lines if raw else clean_log(lines):
            print(line, flush=follow)
    except ClusterError as error:
        raise _fail(console, error) from None


@job_app.command("list")
def list_jobs(
    address: AddressOption = None,
    limit: Annotated[int | None, typer.Option("--limit", min=1, help="At most this many jobs, the newest.")] = None,
    json_output: JsonOption = False,
) -> None:
    """Jobs on the cluster, newest first."""
    console = make_console()
    try:
        client, _ = _client(address, console, start=False)
        jobs = client.list()
    except ClusterError as error:
        raise _fail(console, error) from None
    jobs = sorted(jobs, key=lambda job: (job.start_time or 0.0, job.job_id), reverse=True)[:limit]
    if json_output:
        print_json(
            [
                {
                    "id": job.job_id,
                    "status": job.status,
                    "job": job.metadata.get("mor.job"),
                    "kind": job.metadata.get("mor.kind"),
                    "started": _when(job.start_time),
                    "ended": _when(job.end_time),
                    "message": job.message,
                }
                for job in jobs
            ]
        )
        return
    table = Table(title=f"jobs ({len(jobs)}, newest first)")
    for column in ("id", "status", "job", "kind", "started"):
        table.add_column(column, no_wrap=column in ("id", "status", "started"))
    for job in jobs:
        meta = job.metadata or {}
        table.add_row(
            job.job_id, job.status, meta.get("mor.job", ""), meta.get("mor.kind", ""), _when(job.start_time) or ""
        )
    print_table(console, table)


def _when(timestamp: float | None) -> str | None:
    """A Ray job time as local `YYYY-MM-DD HH:MM:SS` (None when unknown)."""
    if not timestamp:
        return None
    seconds = timestamp / 1000 if timestamp > 1e11 else timestamp  # Ray reports milliseconds
    return datetime.fromtimestamp(seconds).isoformat(sep=" ", timespec="seconds")


@job_app.command("stop")
def stop(job_id: JobIdArgument, address: AddressOption = None) -> None:
    """Stop a running job."""
    from mor.registry import end_open_runs

    console = make_console()
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
