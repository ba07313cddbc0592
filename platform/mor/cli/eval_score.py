"""`mor eval score bfcl/CATEGORY --results FILE.jsonl`: score outputs produced elsewhere against BFCL."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from mor.cli.render import JsonOption, make_console, print_json, print_table
from mor.evals.bfcl import (
    BfclDataError,
    CategoryReport,
    ItemResult,
    ResultFileError,
    check_category,
    load_items,
    read_results,
    score_results,
)
from mor.settings import Settings

__all__ = ["score_command"]


#: The failure reason of an item the result file has no line for.
_MISSING = "missing_result"


def score_command(
    category: Annotated[
        str,
        typer.Argument(
            metavar="bfcl/CATEGORY", help="The category to score, as bfcl/CATEGORY (e.g. bfcl/simple_python)."
        ),
    ],
    results: Annotated[
        Path,
        typer.Option(
            "--results",
            metavar="FILE.jsonl",
            help="JSON Lines file, one object per item: its id and the model's result, either a list of calls "
            'such as {"id": "simple_python_0", "result": [{"calculate_area": {"base": 10, "height": 5}}]} or the '
            'raw text, such as "calculate_area(base=10, height=5)". See README.md, "BFCL result files".',
        ),
    ],
    data_dir: Annotated[
        Path | None,
        typer.Option(
            "--data-dir", metavar="DIR", help="Directory holding bfcl/ (default: the MOR_BENCHMARKS_DIR setting)."
        ),
    ] = None,
    items: Annotated[
        bool, typer.Option("--items", help="Also list every item with its verdict and failure reason.")
    ] = False,
    json_output: JsonOption = False,
) -> None:
    """Score a BFCL result file: accuracy, the items without a result, and the failures by reason.

    Accuracy is over every item of the category, as on the leaderboard; items the file has no line for count as
    failures and are reported as missing, with the accuracy on the answered items beside it. Every item's
    verdict: --items or --json.
    """
    err = make_console(stderr=True)
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
                "holding bfcl/) or set MOR_BENCHMARKS_DIR; to get BFCL v4, see 'Benchmark data' in README.md"
            )
        loaded = load_items(name, root)
        report = score_results(loaded, read_results(results), source=str(results))
    except (BfclDataError, ResultFileError) as error:
        err.print(f"[red]error:[/red] {escape(str(error))}", highlight=False)
        raise typer.Exit(code=2) from None
    missing = [item.id for item in report.items if _reason(item) == _MISSING]
    if json_output:
        answered = report.score.total - len(missing)
        correct = report.score.correct
        print_json(
            report.to_dict()
            | {
                "answered": answered,
                "missing": len(missing),
                "answered_accuracy": correct / answered if answered else None,
            }
        )
        return
    _render(report, missing, results, make_console(), items=items)


def _reason(item: ItemResult) -> str | None:
    return item.reason.value if item.reason is not None else None


def _render(report: CategoryReport, missing: list[str], source: Path, console: Console, *, items: bool) -> None:
    score = report.score
    answered = score.total - len(missing)
    console.print(
        f"[bold]bfcl/{score.category}[/bold]: accuracy [bold]{score.accuracy:.2%}[/bold] "
        f"({score.correct}/{score.total})",
        highlight=False,
    )
    if missing:
        on_answered = f"{score.correct / answered:.2%} ({score.correct}/{answered})" if answered else "—"
        console.print(
            f"[yellow]{len(missing)} of {score.total} items have no result in {escape(str(source))}[/] and count "
            f"as failures (the leaderboard scores every item); on the {answered} items it answers, the accuracy is "
            f"{on_answered}. Missing: {escape(_first(missing))}",
            highlight=False,
        )
    by_reason: dict[str, list[str]] = {}
    for item in report.items:
        reason = _reason(item)
        if reason is not None and reason != _MISSING:
            by_reason.setdefault(reason, []).append(item.id)
    if by_reason:
        breakdown = Table(title="failures by reason (items with a result)")
        breakdown.add_column("reason", no_wrap=True)
        breakdown.add_column("items", justify="right", no_wrap=True)
        breakdown.add_column("e.g.")
        for reason, ids in sorted(by_reason.items(), key=lambda entry: (-len(entry[1]), entry[0])):
            breakdown.add_row(reason, str(len(ids)), escape(_first(ids, 3)))
        print_table(console, breakdown)
    if not items:
        if report.items:
            console.print("Every item's verdict: --items (or --json).")
        return
    verdicts = Table(title="per-item verdicts")
    verdicts.add_column("id", no_wrap=True)
    verdicts.add_column("verdict", no_wrap=True)
    verdicts.add_column("reason", no_wrap=True)
    verdicts.add_column("detail")
    for item in report.items:
        if _reason(item) == _MISSING:
            continue
        verdicts.add_row(
            item.id,
            "[green]pass[/green]" if item.passed else "[red]fail[/red]",
            _reason(item) or "",
            escape(item.message),
        )
    print_table(console, verdicts)


def _first(ids: list[str], shown: int = 5) -> str:
    """The first few ids, and how many more."""
    head = ", ".join(ids[:shown])
    return head + (f" and {len(ids) - shown} more" if len(ids) > shown else "")
