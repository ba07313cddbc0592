"""`mor eval run SUITE --model M`: evaluate a model once, as a Ray job, and show its result."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape

from mor.cli.eval_common import (
    NO_RUN_OPTIONS,
    AddressOption,
    CategoryOption,
    RunOptions,
    database,
    fail,
    model_uri,
    run_table,
    selection,
    user,
    with_run_options,
)
from mor.cli.follow import render_progress
from mor.cli.render import make_console, print_table
from mor.cluster import ClusterError, follow_progress
from mor.settings import Settings
from mor.store import StoreError, fail_lost_job, get_run, session_scope, utcnow

__all__ = ["run_command"]


@with_run_options
def run_command(
    suite: Annotated[
        str, typer.Argument(help="SUITE or SUITE/CATEGORY: bfcl/simple_python, stabletoolbench/G1_tool, synthetic.")
    ],
    model: Annotated[
        str,
        typer.Option(
            "--model",
            metavar="MODEL_URI",
            help="What to evaluate: models:/NAME@ALIAS (e.g. models:/mor-agent@candidate, what a train job "
            "registers), models:/NAME/VERSION, runs:/RUN_ID/PATH, an agent directory, or an OpenAI-compatible "
            "http(s)://HOST/v1 endpoint.",
        ),
    ],
    categories: CategoryOption = None,
    options: RunOptions = NO_RUN_OPTIONS,
    address: AddressOption = None,
    wait: Annotated[bool, typer.Option("--wait/--no-wait", help="Follow the job until it ends.")] = True,
) -> None:
    """Evaluate a model on a suite once, as a Ray job; every item's verdict is stored in SQL."""
    from mor.scheduler.service import RayEvalSubmitter

    console = make_console()
    try:
        chosen = selection(suite, categories)
        checked = options.checked()
        uri = model_uri(model)
        settings = Settings()
        submitter = RayEvalSubmitter(settings, address=address)
        with console.status("Submitting the evaluation (starting the embedded Ray cluster if needed)…"):
            submitted = submitter.submit_run(
                suite=chosen.suite,
                categories=chosen.categories,
                model_uri=uri,
                options=checked,
                triggered_by=f"user:{user()}",
            )
    except (ValueError, StoreError, ClusterError) as error:
        raise fail(console, error) from None
    console.print(
        f"Submitted run [bold]{submitted.run_id}[/] ({chosen.label} of {escape(uri)}) as job "
        f"[bold]{submitted.job_id}[/]"
    )
    if not wait:
        console.print(
            f"Follow it with: mor job status {submitted.job_id} --follow; then: mor eval show {submitted.run_id}"
        )
        return
    try:
        render_progress(follow_progress(submitter.client, submitted.job_id), console)
        info = submitter.client.wait(submitted.job_id, timeout_s=60)
    except ClusterError as error:
        raise fail(console, error) from None
    with database(settings) as engine, session_scope(engine) as session:
        run = get_run(session=session, run_id=submitted.run_id)
        if run.status in ("queued", "running"):  # the job died before it could record anything
            error = f"job {submitted.job_id} ended {info.status} without finishing run {run.id}: {info.message or ''}"
            fail_lost_job(session=session, run_id=run.id, error=error, now=utcnow())
            session.refresh(run)
    if run.status != "succeeded":
        reason = (run.error or "").splitlines()[0] if run.error else f"job {info.status}: {info.message or ''}"
        console.print(f"[bold red]Run {run.id} {run.status}[/]: {escape(reason)}")
        console.print(f"See: mor job logs {submitted.job_id}")
        raise typer.Exit(1)
    print_table(console, run_table(run))
    console.print(f"Items and why they failed: mor eval show {run.id} --failed")
