"""`mor eval results` (runs, newest first, with failures by role; `--plot` draws the score over time) and
`mor eval compare A B` (per-category deltas and flipped items; `--model` compares registered models instead)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

import typer
from rich.markup import escape
from rich.table import Table
from sqlalchemy.orm import Session

from mor.cli.eval_common import (
    UsageError,
    database,
    fail,
    model_label,
    run_dict,
    run_label,
    selection,
    when,
)
from mor.cli.render import JsonOption, failures_text, make_console, print_json, print_table
from mor.evals.record import canonical_metrics
from mor.settings import Settings
from mor.store import (
    RUN_STATUSES,
    RunComparison,
    ScorePoint,
    StoreError,
    compare_runs,
    list_runs,
    score_history,
    session_scope,
)

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


#: Half the x-axis span around a single point in time (one run, or runs finished at the same moment).
_ONE_POINT_MARGIN = timedelta(days=1)


def _overall(points: Sequence[ScorePoint]) -> list[tuple[datetime, float]]:
    """Per run, the accuracy over all its plotted items (passed / total across categories), oldest first."""
    runs: dict[int, tuple[datetime, int, int]] = {}
    for point in points:
        finished, passed, total = runs.get(point.run_id, (point.finished_at, 0, 0))
        runs[point.run_id] = (finished, passed + point.passed, total + point.total)
    ordered = sorted(runs.values(), key=lambda run: run[0])
    return [(finished, 100.0 * passed / total) for finished, passed, total in ordered if total]


def _figure(history: dict[str, list[ScorePoint]]) -> tuple[Any, list[str], list[str]]:
    """The score-over-time figure: a thin line per category (and model, and judge kind) and a thick overall line
    per suite (and model, and judge kind); returns it, the category lines' labels and the overall lines' labels. A
    single point in time gets an axis of a day either side."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt

    models = {p.model_uri for points in history.values() for p in points}
    several = len(models) > 1
    series: dict[str, list[ScorePoint]] = {}
    overall: dict[str, list[ScorePoint]] = {}
    for suite, points in history.items():
        for point in points:
            series.setdefault(_series_label(point, suite, several), []).append(point)
            key = _series_label(point, suite, several).replace(f"{suite}/{point.category}", f"{suite} overall", 1)
            overall.setdefault(key, []).append(point)
    figure, axes = plt.subplots(figsize=(10, 5.5))
    for label, points in sorted(series.items()):
        axes.plot(
            [p.finished_at for p in points], [100.0 * p.accuracy for p in points], marker="o", alpha=0.7, label=label
        )
    for label, points in sorted(overall.items()):
        line = _overall(points)
        axes.plot([t for t, _ in line], [v for _, v in line], color="black", linewidth=2.5, marker="s", label=label)
    axes.set_title("Score over time: overall and per category")
    axes.set_ylabel("accuracy (%)")
    axes.set_ylim(-2, 102)
    axes.grid(True, alpha=0.3)
    times = sorted({p.finished_at for points in history.values() for p in points})
    if times and times[0] == times[-1]:
        axes.set_xlim(mdates.date2num(times[0] - _ONE_POINT_MARGIN), mdates.date2num(times[0] + _ONE_POINT_MARGIN))
    locator = mdates.AutoDateLocator(minticks=3, maxticks=8)
    axes.xaxis.set_major_locator(locator)
    axes.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    axes.set_xlabel("finished (UTC)")
    if series:
        axes.legend(fontsize="small", loc="center left", bbox_to_anchor=(1.01, 0.5))
    else:
        axes.text(0.5, 0.5, "no finished runs match", ha="center", va="center", transform=axes.transAxes)
    figure.tight_layout()
    return figure, sorted(series), sorted(overall)


def _plot(history: dict[str, list[ScorePoint]], path: Path) -> tuple[int, int]:
    """Draw the score over time into PNG `path`; returns how many category and overall lines it has."""
    import matplotlib.pyplot as plt

    figure, categories, overall = _figure(history)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return len(categories), len(overall)


def _history(
    session: Session, suites: Sequence[str], categories: Sequence[str], model: str | None, since: datetime | None
) -> dict[str, list[ScorePoint]]:
    return {
        suite: score_history(session=session, suite=suite, model=model, categories=categories or None, since=since)
        for suite in suites
    }


def results_command(
    suite: Annotated[
        str | None,
        typer.Option("--suite", metavar="SUITE", help="Only this suite (bfcl) or category (bfcl/simple_python)."),
    ] = None,
    model: Annotated[
        str | None,
        typer.Option(
            "--model", metavar="MODEL", help="Only this model: its URI as given, or its registered name (mor-agent)."
        ),
    ] = None,
    since: Annotated[
        str | None,
        typer.Option("--since", metavar="WHEN", help="Only runs since a date/time (2025-06-01) or an age (7d, 12h)."),
    ] = None,
    status: Annotated[
        Literal[RUN_STATUSES] | None,  # type: ignore[valid-type]
        typer.Option("--status", help="Only runs with this status."),
    ] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, help="At most this many runs in the table.")] = 20,
    plot: Annotated[
        Path | None,
        typer.Option(
            "--plot", metavar="FILE.png", help="Also draw the score over time, overall and per category (PNG)."
        ),
    ] = None,
    json_output: JsonOption = False,
) -> None:
    """Evaluation runs, newest first, with their accuracy and failures by role; `--plot` draws the trend."""
    console = make_console()
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
        print_json([run_dict(run) for run in shown])
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
            table.add_column(
                column,
                justify="right" if column in ("run", "accuracy", "items") else "left",
                no_wrap=column in ("run", "finished (UTC)", "suite", "status", "accuracy", "items"),
            )
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
        print_table(console, table)
    if plot is not None and history is not None:
        categories, overall = _plot(history, plot)
        notes = make_console(stderr=True) if json_output else console
        notes.print(f"Wrote {plot} ({categories} category series and {overall} overall, score over time)")


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
        "shared_items": comparison.shared,
        "only_in_a": comparison.only_in_a,
        "only_in_b": comparison.only_in_b,
        "shared_only": comparison.shared_only,
    }


def compare_command(
    run_a: Annotated[int | None, typer.Argument(help="The earlier (baseline) run id.", show_default=False)] = None,
    run_b: Annotated[int | None, typer.Argument(help="The later run id.", show_default=False)] = None,
    models: Annotated[
        list[str] | None,
        typer.Option(
            "--model",
            "-m",
            metavar="NAME",
            help="Compare registered models instead of two runs (repeat: -m ablation-mor -m ablation-lora-r64): "
            "each over all its evaluated versions (seeds), with trainable parameters and training time.",
        ),
    ] = None,
    suite: Annotated[str, typer.Option(help="With --model: the suite whose evaluations to compare.")] = "synthetic",
    reference: Annotated[
        str | None, typer.Option(metavar="NAME", help="With --model: the model the others are measured against.")
    ] = None,
    plot: Annotated[
        Path | None,
        typer.Option(
            "--plot",
            metavar="FILE.png",
            help="With --model: also draw accuracy per model (mean, sd, each run) and against trainable parameters.",
        ),
    ] = None,
    max_items: Annotated[int, typer.Option("--max-flipped", min=0, help="List at most this many flipped items.")] = 50,
    shared_only: Annotated[
        bool,
        typer.Option(
            "--shared-only",
            help="Compare accuracies over the items both runs have (when one run has items the other lacks).",
        ),
    ] = False,
    json_output: JsonOption = False,
) -> None:
    """Two runs (per-category accuracy deltas B − A and the items whose verdict flipped), or several registered
    models with --model (one row per model: mean ± sd over its evaluated versions, trainable parameters, training
    time, failures by role, the difference from the reference and whether it exceeds the spread; per category).

    When two runs have different items (a smoke run with --max-items, other categories) it says so; --shared-only
    then compares the accuracies over the items both runs have.
    """
    if models:
        _compare_models(models, run_a, suite, reference, plot, json_output)
        return
    if run_a is None or run_b is None:
        usage = UsageError("give two run ids (mor eval compare 12 15) or --model NAME twice or more")
        raise fail(make_console(), usage)
    console = make_console()
    try:
        with database(Settings()) as engine, session_scope(engine) as session:
            comparison = compare_runs(session=session, run_a=run_a, run_b=run_b, shared_only=shared_only)
    except (ValueError, StoreError) as error:
        raise fail(console, error) from None
    if json_output:
        print_json(_comparison_dict(comparison))
        if not comparison.same_items:
            make_console(stderr=True).print(_items_warning(comparison), highlight=False)
        return
    a, b = comparison.run_a, comparison.run_b
    for tag, run in (("A", a), ("B", b)):
        console.print(
            f"[bold]{tag}[/] run {run.id}: {run_label(run)} of {escape(model_label(run))}, {run.status}, "
            f"{when(run.finished_at or run.created_at)} UTC"
        )
    if not comparison.same_items:
        console.print(_items_warning(comparison), highlight=False)
    over = f", over the {comparison.shared} shared items" if shared_only else ""
    table = Table(title=f"run {a.id} → run {b.id}{over}")
    for column in ("category", "A", "B", "Δ"):
        table.add_column(column, justify="left" if column == "category" else "right", no_wrap=True)
    for delta in comparison.categories:
        change = "" if delta.delta is None else f"{delta.delta:+.3f}"
        style = "green" if (delta.delta or 0) > 0 else "red" if (delta.delta or 0) < 0 else ""
        table.add_row(
            delta.category,
            _accuracy(delta.passed_a, delta.total_a),
            _accuracy(delta.passed_b, delta.total_b),
            f"[{style}]{change}[/]" if style else change,
        )
    print_table(console, table)
    if not comparison.flipped:
        console.print("No item changed its verdict.")
        return
    flipped = Table(title=f"flipped items: {len(comparison.fixed)} fixed, {len(comparison.broken)} broken")
    for column in ("category", "item", "A → B", "A: reason (role)", "B: reason (role)"):
        flipped.add_column(column, no_wrap=column in ("category", "item", "A → B"))
    for item in comparison.flipped[:max_items]:
        arrow = "[green]fail → pass[/]" if item.passed_b else "[red]pass → fail[/]"
        why_a = f"{item.failure_reason_a or ''}" + (f" ({item.failing_role_a})" if item.failing_role_a else "")
        why_b = f"{item.failure_reason_b or ''}" + (f" ({item.failing_role_b})" if item.failing_role_b else "")
        flipped.add_row(item.category, escape(item.item_id), arrow, why_a, why_b)
    print_table(console, flipped)
    if len(comparison.flipped) > max_items:
        console.print(f"… and {len(comparison.flipped) - max_items} more (--max-flipped, or --json for all)")


def _compare_models(
    models: list[str], run_a: int | None, suite: str, reference: str | None, plot: Path | None, json_output: bool
) -> None:
    """`mor eval compare --model …`: the variants comparison (see mor.cli.eval_variants)."""
    from mor.cli.eval_variants import compare_variants  # MLflow behind it: imported only when used

    console = make_console()
    if run_a is not None:
        raise fail(console, UsageError("give run ids or --model names, not both"))
    if len(set(models)) < 2:
        raise fail(console, UsageError(f"--model: got {', '.join(models)}; compare at least two different models"))
    try:
        unique = list(dict.fromkeys(models))
        compare_variants(unique, suite=suite, reference=reference, plot=plot, json_output=json_output)
    except (ValueError, StoreError) as error:
        raise fail(console, error) from None


def _items_warning(comparison: RunComparison) -> str:
    """What differs between the runs' item sets, and what the accuracies are then over."""
    a, b = comparison.run_a.id, comparison.run_b.id
    text = (
        f"Warning: the runs have different items — {comparison.shared} shared, {comparison.only_in_a} only in run "
        f"{a}, {comparison.only_in_b} only in run {b}"
    )
    if comparison.shared_only:
        return text + "; the accuracies below are over the shared items only."
    return text + "; each accuracy is over its own run's items. Pass --shared-only to compare over the shared items."
