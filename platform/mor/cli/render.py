"""Rendering helpers shared by the CLI commands: consoles, tables that never cut an id or a number, plain text when
stdout is not a terminal, JSON for scripts.

Tables are built with rich as usual; columns holding ids, numbers or times are added with `no_wrap=True`. Print
them with `print_table`: on a terminal the no-wrap columns get the width of their longest value and free text wraps
instead; anywhere else (a pipe, a file) the table is written as plain aligned text, one row per line, no box, no
colour and no width limit, so `mor job list | grep` and `awk '{print $1}'` see whole values.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from mor.evals.record import failures_by_role

if TYPE_CHECKING:
    from mor.spec import DataJobSpec, SpecError, TrainJobSpec

__all__ = [
    "JsonOption",
    "failures_text",
    "make_console",
    "plain_lines",
    "print_json",
    "print_spec_error",
    "print_table",
    "spec_table",
]

_ROLE_ORDER = ("reasoner", "executor", "summarizer")

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts instead of tables.")]


def make_console(*, stderr: bool = False) -> Console:
    """A console for a command's output: rich on a terminal; elsewhere no colour and no line wrapping, so a long
    id or URI stays on one line."""
    console = Console(stderr=stderr)
    if not console.is_terminal:
        console.soft_wrap = True
    return console


def print_json(data: Any) -> None:
    """Write `data` as indented JSON to stdout (dates and other objects as text)."""
    typer.echo(json.dumps(data, indent=2, ensure_ascii=False, default=str))


def _plain(cell: Any) -> str:
    if isinstance(cell, Text):
        text = cell.plain
    elif isinstance(cell, str):
        text = Text.from_markup(cell).plain
    else:
        text = str(cell)
    return " ".join(text.split())


def plain_lines(table: Table) -> Iterator[str]:
    """The table as plain text: its title, the header and one line per row with aligned columns, its caption."""
    if table.title:
        yield _plain(table.title)
    columns = [[_plain(cell) for cell in column.cells] for column in table.columns]
    headers = [_plain(column.header) for column in table.columns]
    rows = [list(row) for row in zip(*columns, strict=True)]
    if table.show_header:
        rows.insert(0, headers)
    widths = [max((len(row[i]) for row in rows), default=0) for i in range(len(table.columns))]
    for row in rows:
        cells = [
            value.rjust(width) if column.justify == "right" else value.ljust(width)
            for value, width, column in zip(row, widths, table.columns, strict=True)
        ]
        yield "  ".join(cells).rstrip()
    if table.caption:
        yield _plain(table.caption)


#: The narrowest a free-text column may get on a terminal before a table is shown as records instead.
_MIN_TEXT_WIDTH = 10


def _records(table: Table) -> Table:
    """The table as one block per row (`header  value` lines), for a terminal too narrow for its columns."""
    records = Table(title=table.title, show_header=False, box=None, caption=table.caption, padding=(0, 2, 0, 0))
    records.add_column("field", style="bold", no_wrap=True)
    records.add_column("value", overflow="fold")
    columns = [list(column.cells) for column in table.columns]
    for index, row in enumerate(zip(*columns, strict=True)):
        if index:
            records.add_row("", "")
        for column, cell in zip(table.columns, row, strict=True):
            records.add_row(_plain(column.header), cell)
    return records


def print_table(console: Console, table: Table) -> None:
    """Print `table`: rich on a terminal, never cutting a no-wrap column (ids, numbers, times) — free text wraps,
    and a terminal too narrow for that gets one block per row; plain text elsewhere (see `plain_lines`)."""
    if not console.is_terminal:
        for line in plain_lines(table):
            console.out(line, highlight=False)
        return
    needed = len(table.columns) + 1  # the vertical rules
    for column in table.columns:
        longest = max((len(_plain(cell)) for cell in [column.header, *column.cells]), default=0)
        if column.no_wrap:
            column.min_width = longest
        else:
            column.overflow = "fold"  # free text wraps; a long word folds rather than losing its end
        needed += (longest if column.no_wrap else min(longest, _MIN_TEXT_WIDTH)) + 2  # cell padding
    console.print(table if needed <= console.width else _records(table))


def spec_table(spec: TrainJobSpec | DataJobSpec, source: str) -> Table:
    """A short table of what a spec will do."""
    from mor.spec import TrainJobSpec

    table = Table(title=f"{source}: {spec.kind} job '{spec.name}'", show_header=False)
    table.add_column("field", style="bold", no_wrap=True)
    table.add_column("value")
    if isinstance(spec, TrainJobSpec):
        base = spec.base_model.model_dump(mode="json")
        table.add_row("base model", ", ".join(f"{k}: {v}" for k, v in base.items() if v is not None))
        roles = ", ".join(
            f"{name} ({'shared + ' if r.shared else ''}{r.routed} routed, top-{r.top_k})"
            for name, r in spec.mor.roles.items()
        )
        table.add_row("roles", roles)
        table.add_row("adapters", f"rank {spec.mor.rank} on {', '.join(spec.mor.target_modules)}")
        table.add_row(
            "training",
            f"{spec.train.workers} worker(s), {'GPU' if spec.train.use_gpu else 'CPU'}, {spec.train.epochs:g} epochs, "
            f"lr {spec.train.lr:g}, batch {spec.train.batch_size}",
        )
        if spec.register_ is not None:
            table.add_row("register", f"models:/{spec.register_.model_name}@{spec.register_.alias}")
        if spec.eval is not None:
            table.add_row("eval", ", ".join(spec.eval.suites))
    table.add_row("data", f"{len(spec.data.sources)} source(s)")
    return table


def print_spec_error(console: Console, error: SpecError) -> None:
    """Print every problem of a refused spec."""
    console.print(f"[bold red]Refused:[/] {len(error.problems)} problem(s) in {escape(error.source)}")
    for problem in error.problems:
        console.print(f"  [red]•[/] {escape(error.source)}: {escape(problem)}", highlight=False, soft_wrap=True)


def failures_text(summary: Mapping[str, Any] | None) -> str:
    """Failed items by role, e.g. `reasoner 2, executor 1` (empty when none); reads either metric naming scheme."""
    counts = failures_by_role(summary)
    ordered = sorted(counts, key=lambda role: (_ROLE_ORDER.index(role) if role in _ROLE_ORDER else 99, role))
    return ", ".join(f"{role} {counts[role]}" for role in ordered)
