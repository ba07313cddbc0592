"""`mor eval schedule add | list | pause | resume | remove`: cron schedules of evaluations."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Literal

import typer
from rich.markup import escape
from rich.table import Table

from mor.cli.eval_common import (
    NO_RUN_OPTIONS,
    CategoryOption,
    RunOptions,
    database,
    fail,
    model_uri,
    selection,
    user,
    when,
    with_run_options,
)
from mor.cli.render import JsonOption, make_console, print_json, print_table
from mor.settings import Settings
from mor.store import (
    CATCH_UP_POLICIES,
    EvalRun,
    Schedule,
    StoreError,
    create_schedule,
    list_runs,
    list_schedules,
    remove_schedule,
    session_scope,
    set_paused,
)

__all__ = ["schedule_app"]

schedule_app = typer.Typer(help="Cron schedules of evaluations, fired by `mor eval serve`.", no_args_is_help=True)


@schedule_app.command("add")
@with_run_options
def schedule_add(
    name: Annotated[str, typer.Argument(help="Schedule name, e.g. bfcl-nightly.")],
    cron: Annotated[
        str, typer.Option("--cron", metavar="CRON", help="Cron expression, e.g. '0 2 * * *' for 02:00 every night.")
    ],
    suite: Annotated[
        str, typer.Option("--suite", metavar="SUITE", help="SUITE or SUITE/CATEGORY, e.g. bfcl or bfcl/simple_python.")
    ],
    model: Annotated[
        str,
        typer.Option(
            "--model",
            metavar="MODEL_URI",
            help="Best an alias URI (models:/mor-agent@champion): each fire evaluates the version the alias names "
            "then, so a promotion (mor model promote) is picked up by the next fire.",
        ),
    ],
    categories: CategoryOption = None,
    timezone_name: Annotated[
        str, typer.Option("--timezone", metavar="ZONE", help="IANA time zone of the cron times, e.g. Europe/Paris.")
    ] = "UTC",
    catch_up: Annotated[
        Literal[CATCH_UP_POLICIES],  # type: ignore[valid-type]
        typer.Option(
            "--catch-up",
            help="Fires missed while no scheduler ran: skip them, run the latest once, or run them all.",
        ),
    ] = "run_once",
    max_retries: Annotated[int, typer.Option("--max-retries", min=0, help="Retries of a failed run.")] = 0,
    paused: Annotated[bool, typer.Option("--paused", help="Create it paused.")] = False,
    options: RunOptions = NO_RUN_OPTIONS,
) -> None:
    """Add a cron schedule of an evaluation."""
    console = make_console()
    try:
        chosen = selection(suite, categories)
        checked = options.checked()
        uri = model_uri(model)
        with database(Settings()) as engine, session_scope(engine) as session:
            schedule = create_schedule(
                session=session,
                name=name,
                cron=cron,
                suite=chosen.suite,
                model_uri=uri,
                categories=chosen.categories,
                timezone=timezone_name,
                catch_up=catch_up,
                max_retries=max_retries,
                paused=paused,
                config=checked,
                created_by=f"user:{user()}",
            )
    except (ValueError, StoreError) as error:
        raise fail(console, error) from None
    print_table(console, _schedules_table([schedule], {}))
    state = "paused" if schedule.paused else f"next fire {when(schedule.next_fire_at)} UTC"
    console.print(f"[green]Schedule {escape(schedule.name)} added[/] ({state}); it runs while `mor eval serve` does.")


def _schedules_table(schedules: Sequence[Schedule], last_runs: dict[int, EvalRun]) -> Table:
    table = Table(title="schedules")
    for column in ("name", "cron", "suite", "model", "next fire (UTC)", "state", "catch-up", "retries", "last run"):
        table.add_column(column, no_wrap=column != "cron")
    for schedule in schedules:
        label = (
            f"{schedule.suite}/{schedule.categories[0]}"
            if len(schedule.categories) == 1
            else f"{schedule.suite} ({len(schedule.categories)})"
            if schedule.categories
            else schedule.suite
        )
        last = last_runs.get(schedule.id)
        table.add_row(
            escape(schedule.name),
            escape(schedule.cron) + ("" if schedule.timezone == "UTC" else f" {schedule.timezone}"),
            label,
            escape(schedule.model_uri),
            "" if schedule.paused else when(schedule.next_fire_at),
            "[yellow]paused[/]" if schedule.paused else "active",
            schedule.catch_up,
            str(schedule.max_retries),
            f"#{last.id} {last.status}" if last is not None else "",
        )
    return table


@schedule_app.command("list")
def schedule_list(json_output: JsonOption = False) -> None:
    """Every schedule, its next fire time and its latest run."""
    console = make_console()
    try:
        with database(Settings()) as engine, session_scope(engine) as session:
            schedules = list_schedules(session=session)
            last_runs = {
                s.id: runs[0] for s in schedules if (runs := list_runs(session=session, schedule_id=s.id, limit=1))
            }
    except StoreError as error:
        raise fail(console, error) from None
    if json_output:
        print_json(
            [
                {
                    "name": s.name,
                    "cron": s.cron,
                    "timezone": s.timezone,
                    "suite": s.suite,
                    "categories": s.categories,
                    "model_uri": s.model_uri,
                    "paused": s.paused,
                    "catch_up": s.catch_up,
                    "max_retries": s.max_retries,
                    "next_fire_at": s.next_fire_at.isoformat() if s.next_fire_at else None,
                    "config": s.config,
                    "last_run": {"id": last_runs[s.id].id, "status": last_runs[s.id].status}
                    if s.id in last_runs
                    else None,
                }
                for s in schedules
            ]
        )
        return
    print_table(console, _schedules_table(schedules, last_runs))


def _set_paused(name: str, paused: bool) -> None:
    console = make_console()
    try:
        with database(Settings()) as engine, session_scope(engine) as session:
            schedule = set_paused(session=session, name=name, paused=paused)
    except StoreError as error:
        raise fail(console, error) from None
    if paused:
        console.print(f"Schedule {escape(name)} paused: no run fires until it is resumed.")
    else:
        console.print(
            f"Schedule {escape(name)} resumed: next fire {when(schedule.next_fire_at)} UTC "
            "(times that fell in the pause are not caught up)."
        )


@schedule_app.command("pause")
def schedule_pause(name: Annotated[str, typer.Argument(help="Schedule name.")]) -> None:
    """Stop a schedule from firing (its history stays)."""
    _set_paused(name, True)


@schedule_app.command("resume")
def schedule_resume(name: Annotated[str, typer.Argument(help="Schedule name.")]) -> None:
    """Let a paused schedule fire again, from its next cron time."""
    _set_paused(name, False)


@schedule_app.command("remove")
def schedule_remove(name: Annotated[str, typer.Argument(help="Schedule name.")]) -> None:
    """Delete a schedule and its pending fires; the runs it made stay in the results."""
    console = make_console()
    try:
        with database(Settings()) as engine, session_scope(engine) as session:
            remove_schedule(session=session, name=name)
    except StoreError as error:
        raise fail(console, error) from None
    console.print(f"Schedule {escape(name)} removed; its runs stay (see mor eval results).")
