"""`mor eval show RUN [--failed] [--role R] [--category C]`: one run's items, each with its verdict and the reason."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from mor.cli.eval_common import database, fail, model_label, run_dict, run_label, run_table, when
from mor.cli.render import JsonOption, make_console, print_json, print_table
from mor.settings import Settings
from mor.store import ItemResult, StoreError, get_run, item_results, session_scope

__all__ = ["show_command"]


def _item_dict(item: ItemResult) -> dict[str, Any]:
    return {
        "category": item.category,
        "item_id": item.item_id,
        "passed": item.passed,
        "failure_reason": item.failure_reason,
        "failing_role": item.failing_role,
        "detail": item.detail,
        "output": item.output,
        "latency_ms": item.latency_ms,
    }


def _why(item: ItemResult) -> str:
    """The reason and, when the store has one, the detail (which often repeats a free-text reason)."""
    reason = item.failure_reason or ""
    detail = item.detail or ""
    return reason if not detail or detail == reason else f"{reason}: {detail}" if reason else detail


def show_command(
    run_id: Annotated[int, typer.Argument(metavar="RUN", help="The run id, as `mor eval results` lists it.")],
    failed: Annotated[bool, typer.Option("--failed", help="Only the items that failed.")] = False,
    role: Annotated[
        str | None,
        typer.Option("--role", metavar="ROLE", help="Only the items that failed on this role (e.g. executor)."),
    ] = None,
    category: Annotated[
        str | None, typer.Option("--category", "-c", metavar="CATEGORY", help="Only the items of this category.")
    ] = None,
    limit: Annotated[
        int | None, typer.Option("--limit", min=1, help="At most this many items (all by default).")
    ] = None,
    json_output: JsonOption = False,
) -> None:
    """One evaluation run: its scores, then its items with verdict, failure reason and the role that failed."""
    console = make_console()
    try:
        with database(Settings()) as engine, session_scope(engine) as session:
            run = get_run(session=session, run_id=run_id)
            items = item_results(
                session=session,
                run_id=run_id,
                category=category,
                passed=False if failed or role is not None else None,
                failing_role=role,
            )
    except (ValueError, StoreError) as error:
        raise fail(console, error) from None
    shown = items[:limit]
    if json_output:
        print_json({"run": run_dict(run), "items": [_item_dict(item) for item in shown], "matching": len(items)})
        return
    console.print(
        f"Run {run.id}: {run_label(run)} of {escape(model_label(run))}, {run.status}, "
        f"{when(run.finished_at or run.created_at)} UTC, {escape(run.triggered_by)}",
        highlight=False,
    )
    if run.summary is not None:
        print_table(console, run_table(run))
    elif run.error:
        console.print(f"[red]Error:[/] {escape(run.error.splitlines()[0])}")
    which = " ".join(
        part
        for part in (
            f"that failed on role {role}" if role else "that failed" if failed else "",
            f"of category {category}" if category else "",
        )
        if part
    )
    table = Table(title=f"items{' ' + which if which else ''}: {len(shown)} of {len(items)}")
    for column in ("category", "item", "verdict", "role", "reason", "latency (ms)"):
        table.add_column(
            column,
            no_wrap=column not in ("reason",),
            justify="right" if column == "latency (ms)" else "left",
        )
    for item in shown:
        table.add_row(
            item.category,
            escape(item.item_id),
            "[green]pass[/]" if item.passed else "[red]fail[/]",
            item.failing_role or "",
            escape(_why(item)),
            f"{item.latency_ms:.0f}" if item.latency_ms is not None else "",
        )
    print_table(console, table)
    if len(items) > len(shown):
        console.print(f"… and {len(items) - len(shown)} more (raise --limit, or --json for all)")
