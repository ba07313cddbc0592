"""`mor eval compare --models A B …`: registered models (variants: MoR, its ablations, LoRA baselines) side by side,
each over all its evaluated versions (seeds), with trainable parameters, training time and a plot."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from mor.cli.eval_common import database
from mor.cli.render import make_console, print_json, print_table
from mor.evals.ablation import (
    VariantSummary,
    category_rows,
    compare_models,
    comparison_rows,
    plot_summaries,
    summary_dict,
)
from mor.settings import Settings

__all__ = ["compare_variants"]


def _table(title: str, header: Sequence[str], rows: Sequence[Sequence[str]]) -> Table:
    table = Table(title=title)
    for index, column in enumerate(header):
        table.add_column(column, justify="left" if index == 0 else "right", no_wrap=True)
    for row in rows:
        table.add_row(*(escape(cell) for cell in row))
    return table


def _print(console: Console, summaries: Sequence[VariantSummary], suite: str) -> None:
    header, rows, notes = comparison_rows(summaries)
    print_table(console, _table(f"{suite}: variants (mean ± sd over each model's evaluated versions)", header, rows))
    for note in notes:
        console.print(note, highlight=False)
    print_table(console, _table(f"{suite}: accuracy per category", *category_rows(summaries)))


def compare_variants(
    models: Sequence[str], *, suite: str, reference: str | None, plot: Path | None, json_output: bool
) -> None:
    """Compare registered `models` on `suite`: the variants table, the per-category table and, with `plot`, a PNG.
    Raises ValueError for unknown or unevaluated models and a reference outside `models`."""
    console = make_console()
    settings = Settings()
    with database(settings) as engine:
        summaries = compare_models(engine, settings, suite=suite, models=models, reference=reference)
    if json_output:
        print_json([summary_dict(summary) for summary in summaries])
    else:
        _print(console, summaries, suite)
    if plot is not None:
        plot_summaries(summaries, plot)
        make_console(stderr=json_output).print(f"Wrote {plot}", highlight=False)
