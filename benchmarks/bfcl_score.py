"""How fast BFCL's non-live categories score when a model's outputs are given (items/s).

The outputs are each item's possible answer written as a model output (`reference_output`), in two shapes:
a call list, as function-calling models store results, and Python call text (`[f(a=1)]`), as prompting
models do, which adds decoding (python categories and irrelevance only). Building the outputs is not timed;
scoring (decode + check) is.

    .venv/bin/python benchmarks/bfcl_score.py [--data-dir ../shared/benchmarks] [--repeat 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from mor.evals.bfcl import NON_LIVE_AST_CATEGORIES, BfclItem, Language, load_items, reference_output, score_item

CATEGORIES = (*NON_LIVE_AST_CATEGORIES, "irrelevance")


def _python_text(calls: list[dict[str, dict[str, Any]]]) -> str:
    rendered = []
    for call in calls:
        ((name, arguments),) = call.items()
        rendered.append(f"{name}({', '.join(f'{key}={value!r}' for key, value in arguments.items())})")
    return "[" + ", ".join(rendered) + "]"


def _outputs(items: list[BfclItem], shape: str) -> list[Any] | None:
    if items[0].ground_truth is None:  # irrelevance: the right answer is no call
        return ["I cannot answer this with the functions given." if shape == "text" else [] for _ in items]
    if shape == "text" and items[0].language is not Language.PYTHON:
        return None
    calls = [reference_output(item) for item in items]
    return [_python_text(c) for c in calls] if shape == "text" else calls


def _time(items: list[BfclItem], outputs: list[Any], repeat: int) -> tuple[float, int]:
    rates = []
    passed = 0
    for _ in range(repeat):
        start = time.perf_counter()
        passed = sum(score_item(item, output).passed for item, output in zip(items, outputs, strict=False))
        rates.append(len(items) / (time.perf_counter() - start))
    return statistics.median(rates), passed


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    shared = Path(__file__).resolve().parents[1].parent / "shared" / "benchmarks"
    default_dir = os.environ.get("MOR_BENCHMARKS_DIR") or str(shared)
    parser.add_argument("--data-dir", type=Path, default=Path(default_dir), help="directory holding bfcl/")
    parser.add_argument("--repeat", type=int, default=7, help="timed passes per category (median reported)")
    args = parser.parse_args(argv)

    table = Table(title=f"BFCL non-live scoring, given outputs (median of {args.repeat} passes)")
    for column in ("category", "items", "passed", "call lists: items/s", "python text: items/s"):
        table.add_column(column, justify="left" if column == "category" else "right")
    totals: dict[str, list[float]] = {"calls": [0, 0.0], "text": [0, 0.0]}  # items, seconds
    for category in CATEGORIES:
        items = load_items(category, args.data_dir)
        cells: dict[str, str] = {}
        passed = 0
        for shape in ("calls", "text"):
            outputs = _outputs(items, shape)
            if outputs is None:
                cells[shape] = "n/a"
                continue
            rate, shape_passed = _time(items, outputs, args.repeat)
            passed = shape_passed if shape == "calls" else passed
            cells[shape] = f"{rate:,.0f}"
            totals[shape][0] += len(items)
            totals[shape][1] += len(items) / rate
        table.add_row(category, str(len(items)), str(passed), cells["calls"], cells["text"])
    table.add_row(
        "all non-live",
        str(int(totals["calls"][0])),
        "",
        *(f"{count / seconds:,.0f}" for count, seconds in totals.values()),
        style="bold",
    )
    Console().print(table)


if __name__ == "__main__":
    main()
