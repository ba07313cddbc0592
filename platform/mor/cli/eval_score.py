"""`mor eval score bfcl/CATEGORY --results FILE.jsonl`: score outputs produced elsewhere against BFCL."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from mor.evals.bfcl import (
    BfclDataError,
    CategoryReport,
    ResultFileError,
    check_category,
    load_items,
    read_results,
    score_results,
)
from mor.settings import Settings

__all__ = ["score_command"]


def score_command(
    category: Annotated[str, typer.Argument(help="The category to score, as bfcl/CATEGORY (e.g. bfcl/simple_python).")],
    results: Annotated[
        Path,
        typer.Option(
            "--results", help='JSON Lines result file: one {"id": ..., "result": [calls] or "raw text"} per item.'
        ),
    ],
    data_dir: Annotated[
        Path | None,
        typer.Option("--data-dir", help="Directory holding bfcl/ (default: the MOR_BENCHMARKS_DIR setting)."),
    ] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print machine-readable JSON instead of tables.")] = False,
) -> None:
    """Score a BFCL result file: the category's accuracy and every item's verdict with its failure reason."""
    err = Console(stderr=True)
    try:
        suite, _, name = category.rpartition("/")
        if suite not in ("", "bfcl"):
            raise BfclDataError(
                f"CATEGORY: got {category!r}; only BFCL result files are scored here, e.g. bfcl/simple_python"
            )
        name = check_category(name)
        root = data_dir if data_dir is not None else Settings().benchmarks_dir
        if root is None:
            raise BfclDataError(
                "--data-dir: not given and MOR_BENCHMARKS_DIR is not set; pass --data-dir DIR (the directory "
                "holding bfcl/) or set MOR_BENCHMARKS_DIR; to download BFCL v4, see 'Benchmark data' in README.md"
            )
        items = load_items(name, root)
        report = score_results(items, read_results(results), source=str(results))
    except (BfclDataError, ResultFileError) as error:
        err.print(f"[red]error:[/red] {escape(str(error))}", highlight=False)
        raise typer.Exit(code=2) from None
    if json_output:
        typer.echo(json.dumps(report.to_dict(), ensure_ascii=False, default=repr))
        return
    _render(report, Console())


def _render(report: CategoryReport, console: Console) -> None:
    score = report.score
    console.print(
        f"[bold]bfcl/{score.category}[/bold]: accuracy [bold]{score.accuracy:.2%}[/bold] "
        f"({score.correct}/{score.total})",
        highlight=False,
    )
    reasons = Counter(item.reason.value for item in report.items if item.reason is not None)
    if reasons:
        breakdown = Table(title="Failures by reason")
        breakdown.add_column("reason")
        breakdown.add_column("items", justify="right")
        for reason, count in reasons.most_common():
            breakdown.add_row(reason, str(count))
        console.print(breakdown)
    verdicts = Table(title="Per-item verdicts")
    verdicts.add_column("id", no_wrap=True)
    verdicts.add_column("verdict")
    verdicts.add_column("reason")
    verdicts.add_column("detail", overflow="fold")
    for item in report.items:
        verdicts.add_row(
            item.id,
            "[green]pass[/green]" if item.passed else "[red]fail[/red]",
            item.reason.value if item.reason else "",
            escape(item.message),
        )
    console.print(verdicts)
