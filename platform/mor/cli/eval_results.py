"""`mor eval results` (runs, newest first, with failures by role; `--plot` draws the score over time) and
`mor eval compare A B` (per-category deltas and flipped items)."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from sqlalchemy.orm import Session

from mor.cli.eval_common import (
    JsonOption,
    UsageError,
    database,
    fail,
    model_label,
    run_dict,
    run_label,
    selection,
    when,
)
from mor.cli.render import failures_text
from mor.evals.record import canonical_metrics
from mor.settings import Settings
from mor.store import RunComparison, ScorePoint, StoreError, compare_runs, list_runs, score_history, session_scope

__all__ = ["compare_command", "results_command"]


def _since(text: str | None) -> datetime | None:
    if text is None:
        return None
    relative = re.fullmatch(r"\s*(\d+)\s*([dhm])\s*", text)
    if relative:
        amount, unit = int(relative.group(1)), relative.group(2)
        delta = {"d": timedelta(days=amount), "h": timedelta(hours=amount), "m": timedelta(minutes=amount)}[unit]
        return datetime.now(UTC) - delta
    try:
        parsed = datetime.fromisoformat(text.strip())
    except ValueError:
        raise UsageError(
            f"--since: got {text!r}, must be a date/time (2025-06-01, 2025-06-01T02:00) or an age (7d, 12h, 30m)"
        ) from None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def _series_label(point: ScorePoint, suite: str, several_models: bool) -> str:
    label = f"{suite}/{point.category}"
    if several_models:  # by the URI as given: a schedule on an alias is one line however often the alias moved
        label += f" · {point.model_uri}"
    if point.judge_kind:
        label += f" ({point.judge_kind} judge)"
    return label


def _plot(history: dict[str, list[ScorePoint]], path: Path) -> int:
    """Score over time, one line per category (and model, and judge kind); returns the number of lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt

    models = {p.model_uri for points in history.values() for p in points}
    series: dict[str, list[ScorePoint]] = {}
    for suite, points in history.items():
        for point in points:
            series.setdefault(_series_label(point, suite, len(models) > 1), []).append(point)
    figure, axes = plt.subplots(figsize=(10, 5.5))
    for label, points in sorted(series.items()):
        axes.plot([p.finished_at for p in points], [100.0 * p.accuracy for p in points], marker="o", label=label)
    axes.set_title("Score over time per category")
    axes.set_ylabel("accuracy (%)")
    axes.set_ylim(-2, 102)
    axes.grid(True, alpha=0.3)
    locator = mdates.AutoDateLocator(minticks=3, maxticks=8)
    axes.xaxis.set_major_locator(locator)
    axes.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    axes.set_xlabel("finished (UTC)")
    if series:
        axes.legend(fontsize="small", loc="center left", bbox_to_anchor=(1.01, 0.5))
    else:
        axes.text(0.5, 0.5, "no finished runs match", ha="center", va="center", transform=axes.transAxes)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return len(series)


def _history(
    session: Session, suites: Sequence[str], categories: Sequence[str], model: str | None, since: datetime | None
) -> dict[str, list[ScorePoint]]:
    return {
        suite: score_history(session=session, suite=suite, model=model, categories=categories or None, since=since)
        for suite in suites
    }


def results_command(
    suite: Annotated[
        str | None, typer.Option("--suite", help="Only this suite (bfcl) or category (bfcl/simple_python).")
    ] = None,
    model: Annotated[
        str | None, typer.Option("--model", help="Only this model: URI as given or registered name.")
    ] = None,
    since: Annotated[
        str | None, typer.Option("--since", help="Only runs since a date/time or an age (7d, 12h).")
    ] = None,
    status: Annotated[str | None, typer.Option("--status", help="Only runs with this status.")] = None,
    limit: Annotated[int, typer.Option("--limit", help="At most this many runs in the table.")] = 20,
    plot: Annotated[
        Path | None, typer.Option("--plot", help="Also draw the score over time per category (PNG).")
    ] = None,
    json_output: JsonOption = False,
) -> None:
    """Evaluation runs, newest first, with their accuracy and failures by role; `--plot` draws the trend."""
    console = Console()
    try:
        suite_name, category = (suite.split("/", 1) + [""])[:2] if suite else (None, "")
        if suite_name is not None:
            selection(suite_name, [category] if category else ())
        after = _since(since)
        with database(Settings()) as engine, session_scope(engine) as session:
            runs = list_runs(session=session, suite=suite_name, model=model, since=after, status=status)
            if category:
                runs = [run for run in runs if category in run.categories]
            history = None
            if plot is not None:
                suites = [suite_name] if suite_name else sorted({run.suite for run in runs})
                history = _history(session, suites, [category] if category else [], model, after)
    except (ValueError, StoreError) as error:
        raise fail(console, error) from None
    shown = runs[:limit]
    if json_output:
        print(json.dumps([run_dict(run) for run in shown], indent=2))
    else:
        table = Table(title=f"evaluation runs ({len(shown)} of {len(runs)})")
        for column in (
            "run",
            "finished (UTC)",
            "suite",
            "model",
            "status",
            "accuracy",
            "items",
            "failures by role",
            "trigger",
        ):
            table.add_column(column, justify="right" if column in ("run", "accuracy", "items") else "left")
        for run in shown:
            summary = canonical_metrics(run.summary)
            accuracy = f"{float(summary['accuracy']):.3f}" if "accuracy" in summary else ""
            status_text = {"succeeded": "[green]succeeded[/]", "failed": "[red]failed[/]"}.get(run.status, run.status)
            judge = f" ({run.judge_kind})" if run.judge_kind else ""
            table.add_row(
                str(run.id),
                when(run.finished_at or run.created_at),
                run_label(run) + judge,
                escape(model_label(run)),
                status_text,
                accuracy,
                str(int(summary["items"])) if "items" in summary else "",
                failures_text(summary),
                escape(run.triggered_by),
            )
        console.print(table)
    if plot is not None and history is not None:
        lines = _plot(history, plot)
        notes = Console(stderr=True) if json_output else console
        notes.print(f"Wrote {plot} ({lines} series, score over time per category)")


def _accuracy(passed: int, total: int) -> str:
    return f"{passed / total:.3f} ({passed}/{total})" if total else "—"


def _comparison_dict(comparison: RunComparison) -> dict[str, Any]:
    return {
        "run_a": run_dict(comparison.run_a),
        "run_b": run_dict(comparison.run_b),
        "categories": [
            {
                "category": c.category,
                "passed_a": c.passed_a,
                "total_a": c.total_a,
                "passed_b": c.passed_b,
                "total_b": c.total_b,
                "accuracy_a": c.accuracy_a,
                "accuracy_b": c.accuracy_b,
                "delta": c.delta,
            }
            for c in comparison.categories
        ],
        "flipped": [item.__dict__ for item in comparison.flipped],
        "fixed": len(comparison.fixed),
        "broken": len(comparison.broken),
    }


def compare_command(
    run_a: Annotated[int, typer.Argument(help="The earlier (baseline) run id.")],
    run_b: Annotated[int, typer.Argument(help="The later run id.")],
    max_items: Annotated[int, typer.Option("--max-flipped", help="List at most this many flipped items.")] = 50,
    json_output: JsonOption = False,
) -> None:
    """Per-category accuracy deltas (B − A) and the items whose verdict flipped between two runs."""
    console = Console()
    try:
        with database(Settings()) as engine, session_scope(engine) as session:
            comparison = compare_runs(session=session, run_a=run_a, run_b=run_b)
    except (ValueError, StoreError) as error:
        raise fail(console, error) from None
    if json_output:
        print(json.dumps(_comparison_dict(comparison), indent=2, default=str))
        return
    a, b = comparison.run_a, comparison.run_b
    for tag, run in (("A", a), ("B", b)):
        console.print(
            f"[bold]{tag}[/] run {run.id}: {run_label(run)} of {escape(model_label(run))}, {run.status}, "
            f"{when(run.finished_at or run.created_at)} UTC"
        )
    table = Table(title=f"run {a.id} → run {b.id}")
    for column in ("category", "A", "B", "Δ"):
        table.add_column(column, justify="left" if column == "category" else "right")
    for delta in comparison.categories:
        change = "" if delta.delta is None else f"{delta.delta:+.3f}"
        style = "green" if (delta.delta or 0) > 0 else "red" if (delta.delta or 0) < 0 else ""
        table.add_row(
            delta.category,
            _accuracy(delta.passed_a, delta.total_a),
            _accuracy(delta.passed_b, delta.total_b),
            f"[{style}]{change}[/]" if style else change,
        )
    console.print(table)
    if not comparison.flipped:
        console.print("No item changed its verdict.")
        return
    flipped = Table(title=f"flipped items: {len(comparison.fixed)} fixed, {len(comparison.broken)} broken")
    for column in ("category", "item", "A → B", "A: reason (role)", "B: reason (role)"):
        flipped.add_column(column)
    for item in comparison.flipped[:max_items]:
        arrow = "[green]fail → pass[/]" if item.passed_b else "[red]pass → fail[/]"
        why_a = f"{item.failure_reason_a or ''}" + (f" ({item.failing_role_a})" if item.failing_role_a else "")
        why_b = f"{item.failure_reason_b or ''}" + (f" ({item.failing_role_b})" if item.failing_role_b else "")
        flipped.add_row(item.category, escape(item.item_id), arrow, why_a, why_b)
    console.print(flipped)
    if len(comparison.flipped) > max_items:
        console.print(f"… and {len(comparison.flipped) - max_items} more (--max-flipped, or --json for all)")
