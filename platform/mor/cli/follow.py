"""Live rendering of a job's progress events (rich), where a job stands, and the final summary table."""

from __future__ import annotations

import json
from collections.abc import Iterable

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from mor.cli.render import failures_text
from mor.cluster import ProgressEvent

__all__ = [
    "describe",
    "latest_by_stage",
    "progress_table",
    "render_progress",
    "summary_from_logs",
    "summary_table",
    "untrained_level_evals",
]

SUMMARY_MARKER = "MOR_SUMMARY"


def describe(event: ProgressEvent) -> str:
    """What a progress event says besides its step: loss, tokens/s, accuracy, ETA while the stage runs."""
    parts: list[str] = []
    if event.loss is not None:
        parts.append(f"loss {event.loss:.3f}")
    if event.tokens_per_s is not None:
        parts.append(f"{event.tokens_per_s:,.0f} tok/s")
    for key in ("accuracy", "passed"):
        if key in event.metrics:
            parts.append(f"{key} {event.metrics[key]:.3f}")
    if event.eta_s is not None and event.total and event.step < event.total:
        minutes, seconds = divmod(int(event.eta_s), 60)
        parts.append(f"ETA {minutes}:{seconds:02d}")
    return "  ".join(parts)


def render_progress(events: Iterable[ProgressEvent], console: Console) -> ProgressEvent | None:
    """Show one progress bar per stage as events arrive; return the last event."""
    last: ProgressEvent | None = None
    tasks: dict[str, TaskID] = {}
    columns = (
        TextColumn("[bold]{task.fields[stage]:<9}"),
        BarColumn(),
        TextColumn("{task.completed:>6.0f}/{task.total:<6.0f}"),
        TextColumn("{task.fields[detail]}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, transient=False) as progress:
        for event in events:
            last = event
            task = tasks.get(event.stage)
            total = float(event.total) if event.total else None
            if task is None:
                task = progress.add_task(event.stage, total=total, stage=event.stage, detail="")
                tasks[event.stage] = task
            progress.update(task, completed=event.step, total=total, detail=describe(event))
    return last


def latest_by_stage(events: Iterable[ProgressEvent]) -> list[ProgressEvent]:
    """The last event of each stage, stages in the order they started."""
    latest: dict[str, ProgressEvent] = {}
    for event in events:
        latest[event.stage] = event
    return list(latest.values())


def progress_table(events: Iterable[ProgressEvent]) -> Table:
    """Where each stage stands: step of total and what its last report said (loss, tokens/s, ETA)."""
    table = Table(title="progress")
    table.add_column("stage", no_wrap=True)
    table.add_column("step", justify="right", no_wrap=True)
    table.add_column("detail")
    for event in latest_by_stage(events):
        table.add_row(event.stage, f"{event.step}/{event.total or '?'}", describe(event))
    return table


def summary_from_logs(text: str) -> dict[str, object] | None:
    """The job's summary (its `MOR_SUMMARY {...}` log line), if it printed one."""
    for line in reversed(text.splitlines()):
        index = line.find(SUMMARY_MARKER + " ")
        if index >= 0:
            try:
                return json.loads(line[index + len(SUMMARY_MARKER) + 1 :])
            except json.JSONDecodeError:
                return None
    return None


def summary_table(summary: dict[str, object], tracking_uri: str) -> Table:
    """The end-of-job table: registered version, held-out accuracy, where to look (for a data job: what it wrote)."""
    if summary.get("kind") == "data":
        table = Table(title=f"data set {summary.get('name')}@{summary.get('version')}: written", show_header=False)
        table.add_column("what", style="bold", no_wrap=True)
        table.add_column("value")
        table.add_row("trajectories", f"{summary.get('train')} train, {summary.get('test')} held out")
        table.add_row("malformed records", f"{summary.get('malformed')} (reasons in malformed.jsonl)")
        table.add_row("where", str(summary.get("directory")))
        table.add_row("use it", f"data: {{sources: [{{dataset: {summary.get('name')}@{summary.get('version')}}}]}}")
        table.add_row("look", f"mor data inspect {summary.get('name')}@{summary.get('version')}")
        return table
    table = Table(title=f"job {summary.get('job_name')}: done", show_header=False)
    table.add_column("what", style="bold", no_wrap=True)
    table.add_column("value")
    table.add_row(
        "training",
        f"{summary.get('steps')} steps in {summary.get('train_seconds')} s, "
        f"final loss {float(summary.get('final_loss') or 0):.4f}",
    )
    if summary.get("model_uri"):
        alias = f"  (alias {summary['alias_uri']})" if summary.get("alias_uri") else ""
        table.add_row("registered", f"{summary['model_uri']}{alias}")
    for result in summary.get("evals") or []:  # type: ignore[union-attr]
        metrics = result.get("metrics", {})
        headline = ("accuracy", "call_accuracy", "answer_accuracy")
        shown = ", ".join(f"{k} {metrics[k]:.3f}" for k in headline if k in metrics)
        failures = failures_text(metrics)
        if failures:
            shown += f"; failures by role: {failures}"
        table.add_row(
            f"eval {result.get('suite')}", f"{shown}  ({result.get('items')} items, SQL run {result.get('run_id')})"
        )
        baseline = result.get("baseline")
        if baseline:
            reused = ", stored result reused" if baseline.get("reused") else ""
            table.add_row(
                "  untrained base",
                f"accuracy {float(baseline['accuracy']):.3f}  (same items, adapters "
                f"off; SQL run {baseline.get('run_id')}{reused})",
            )
        if result.get("verdict") == "not_above_untrained":
            table.add_row("  [bold red]verdict[/]", "[bold red]NO BETTER THAN THE UNTRAINED BASE[/]")
    table.add_row("MLflow run", str(summary.get("mlflow_run_id")))
    ui = f"mlflow ui --backend-store-uri {tracking_uri}"
    table.add_row("look", ui)
    for what, command in next_steps(summary):
        table.add_row(what, command)
    return table


def next_steps(summary: dict[str, object]) -> list[tuple[str, str]]:
    """The commands that take a registered version on: look at it, evaluate it, promote it, serve the champion."""
    uri = str(summary.get("model_uri") or "")
    if not uri.startswith("models:/") or "/" not in uri.removeprefix("models:/"):
        return []
    name, version = uri.removeprefix("models:/").rsplit("/", 1)
    target = str(summary.get("alias_uri") or uri)
    return [
        ("show", f"mor model show {name}/{version}"),
        ("evaluate", f"mor eval run bfcl/simple_python --model {target} --max-items 20"),
        ("promote", f"mor model promote {name} {version} --alias champion"),
        ("serve", f"mor serve models:/{name}@champion"),
    ]


def untrained_level_evals(summary: dict[str, object]) -> list[str]:
    """One line per evaluated suite whose agent scored at or below the untrained base (empty: none did)."""
    lines = []
    for result in summary.get("evals") or []:  # type: ignore[union-attr]
        if result.get("verdict") == "not_above_untrained":
            accuracy = float(result.get("metrics", {}).get("accuracy", 0.0))
            baseline = float(result["baseline"]["accuracy"])
            lines.append(f"{result.get('suite')}: accuracy {accuracy:.3f}, untrained base {baseline:.3f}")
    return lines
