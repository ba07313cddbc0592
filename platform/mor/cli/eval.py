"""`mor eval …`: score result files, run suites as Ray jobs, schedule them, follow and compare the results."""

from __future__ import annotations

import getpass
import json
import logging
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from sqlalchemy import Engine
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from mor.cli.eval_score import score_command
from mor.cli.follow import render_progress
from mor.cluster import ClusterError, follow_progress
from mor.evals.runner import RUN_OPTIONS, SuiteSelection, check_options, is_endpoint, parse_suite
from mor.settings import Settings
from mor.store import (
    CATCH_UP_POLICIES,
    EvalRun,
    InvalidValueError,
    RunComparison,
    Schedule,
    ScorePoint,
    StoreError,
    compare_runs,
    create_schedule,
    fail_lost_job,
    get_run,
    list_runs,
    list_schedules,
    make_engine,
    remove_schedule,
    score_history,
    session_scope,
    set_paused,
    upgrade,
    utcnow,
)

__all__ = ["eval_app", "schedule_app"]

eval_app = typer.Typer(help="Benchmark evaluations: score result files, run and schedule suites, follow results.",
                       no_args_is_help=True)
schedule_app = typer.Typer(help="Cron schedules of evaluations, fired by `mor eval serve`.", no_args_is_help=True)
eval_app.command("score")(score_command)
eval_app.add_typer(schedule_app, name="schedule")

_ROLE_ORDER = ("reasoner", "executor", "summarizer")

# ---------------------------------------------------------------- shared options

DataDirOption = Annotated[
    Path | None,
    typer.Option("--data-dir", help="Directory holding bfcl/ and stabletoolbench/ (default: MOR_BENCHMARKS_DIR)."),
]
AddressOption = Annotated[
    str | None,
    typer.Option("--address", help="Ray dashboard address (http://host:8265); default RAY_ADDRESS or embedded Ray."),
]
CategoryOption = Annotated[
    list[str] | None,
    typer.Option("--category", "-c", help="A category of the suite (repeat for several); default all of them."),
]
MaxItemsOption = Annotated[int | None, typer.Option("--max-items", help=RUN_OPTIONS["max_items"])]
EndpointModelOption = Annotated[str | None, typer.Option("--endpoint-model", help=RUN_OPTIONS["endpoint_model"])]
ApiKeyEnvOption = Annotated[str | None, typer.Option("--api-key-env", help=RUN_OPTIONS["api_key_env"])]
MaxStepsOption = Annotated[int | None, typer.Option("--max-steps", help=RUN_OPTIONS["max_steps"])]
MaxNewTokensOption = Annotated[int | None, typer.Option("--max-new-tokens", help=RUN_OPTIONS["max_new_tokens"])]
ModeOption = Annotated[str | None, typer.Option("--mode", help=RUN_OPTIONS["mode"])]
ApiUrlOption = Annotated[str | None, typer.Option("--api-url", help=RUN_OPTIONS["api_url"])]
SimulatorOption = Annotated[str | None, typer.Option("--simulator-url", help=RUN_OPTIONS["simulator_url"])]
SimulatorModelOption = Annotated[str | None, typer.Option("--simulator-model", help=RUN_OPTIONS["simulator_model"])]
SimulatorKeyOption = Annotated[str | None, typer.Option("--simulator-api-key-env",
                                                        help=RUN_OPTIONS["simulator_api_key_env"])]
JudgeOption = Annotated[str | None, typer.Option("--judge-url", help=RUN_OPTIONS["judge_url"])]
JudgeModelOption = Annotated[str | None, typer.Option("--judge-model", help=RUN_OPTIONS["judge_model"])]
JudgeKeyOption = Annotated[str | None, typer.Option("--judge-api-key-env", help=RUN_OPTIONS["judge_api_key_env"])]
JsonOption = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON instead of tables.")]


class _UsageError(ValueError):
    """A command-line value that breaks a rule (exit code 2)."""


def _fail(console: Console, error: Exception) -> typer.Exit:
    console.print(f"[bold red]Error:[/] {escape(str(error))}")
    usage = isinstance(error, (_UsageError, InvalidValueError)) or type(error) is ValueError
    return typer.Exit(2 if usage else 1)


@contextmanager
def _database(settings: Settings) -> Iterator[Engine]:
    """The results database of `settings`, migrated to head (a fresh MOR_HOME gets its tables)."""
    upgrade(settings.db_url)
    engine = make_engine(settings.db_url)
    try:
        yield engine
    finally:
        engine.dispose()


def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001 - no login name (containers): still record who, as best known
        return "unknown"


def _selection(suite: str, categories: Sequence[str] | None) -> SuiteSelection:
    try:
        return parse_suite(suite, categories or ())
    except ValueError as error:
        raise _UsageError(str(error)) from None


def _options(**values: Any) -> dict[str, Any]:
    data_dir = values.get("data_dir")
    if data_dir is not None and not Path(data_dir).expanduser().is_dir():
        raise _UsageError(f"--data-dir: {str(data_dir)!r} is not a directory; give the directory holding bfcl/")
    try:
        return check_options({key: value for key, value in values.items() if value is not None})
    except ValueError as error:
        raise _UsageError(str(error)) from None


def _model_uri(model: str) -> str:
    """A model URI as the job will see it: a local agent directory becomes absolute (the job runs elsewhere)."""
    if is_endpoint(model) or model.startswith(("models:/", "runs:/")):
        return model
    path = Path(model.removeprefix("file://")).expanduser()
    if not path.is_dir():
        raise _UsageError(
            f"--model: got {model!r}, neither a models:/ or runs:/ URI, an http(s) endpoint, nor an agent directory; "
            "e.g. --model models:/mor-agent@champion"
        )
    return str(path.resolve())


def _when(value: datetime | None) -> str:
    return value.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S") if value is not None else ""


def _since(text: str | None) -> datetime | None:
    if text is None:
        return None
    relative = re.fullmatch(r"\s*(\d+)\s*([dhm])\s*", text)
    if relative:
        amount, unit = int(relative.group(1)), relative.group(2)
        delta = {"d": timedelta(days=amount), "h": timedelta(hours=amount), "m": timedelta(minutes=amount)}[unit]
        return datetime.now(timezone.utc) - delta
    try:
        parsed = datetime.fromisoformat(text.strip())
    except ValueError:
        raise _UsageError(f"--since: got {text!r}, must be a date/time (2025-06-01, 2025-06-01T02:00) or an age "
                          "(7d, 12h, 30m)") from None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=timezone.utc)


def _model_label(run: EvalRun) -> str:
    if run.model is not None and run.model.version is not None:
        return f"{run.model.name} v{run.model.version}" + (f" ({run.model_uri})" if "@" in run.model_uri else "")
    return run.model_uri


def _run_label(run: EvalRun) -> str:
    return f"{run.suite}/{run.categories[0]}" if len(run.categories) == 1 else run.suite


def _failures_by_role(summary: dict[str, Any]) -> str:
    counts = {key.removeprefix("failures/"): int(value) for key, value in summary.items()
              if key.startswith("failures/")}
    ordered = sorted(counts, key=lambda role: (_ROLE_ORDER.index(role) if role in _ROLE_ORDER else 99, role))
    return ", ".join(f"{role} {counts[role]}" for role in ordered)


def _run_dict(run: EvalRun) -> dict[str, Any]:
    return {
        "id": run.id, "suite": run.suite, "categories": list(run.categories), "status": run.status,
        "model_uri": run.model_uri, "model_name": run.model.name if run.model else None,
        "model_version": run.model.version if run.model else None, "triggered_by": run.triggered_by,
        "scheduled_for": run.scheduled_for.isoformat() if run.scheduled_for else None, "attempt": run.attempt,
        "ray_job_id": run.ray_job_id, "judge_kind": run.judge_kind, "summary": run.summary,
        "mlflow_run_id": run.mlflow_run_id, "error": run.error,
        "created_at": run.created_at.isoformat(),
        "finished_at": run.finished_at.isoformat() if run.finished_at else None,
    }


def _run_table(run: EvalRun) -> Table:
    """One finished run: per-category accuracy and failures by role."""
    summary = run.summary or {}
    table = Table(title=f"run {run.id}: {_run_label(run)} — {run.status}")
    for column in ("category", "accuracy", "items"):
        table.add_column(column, justify="left" if column == "category" else "right")
    for key, value in sorted(summary.items()):
        if key.startswith("accuracy/"):
            table.add_row(key.removeprefix("accuracy/"), f"{float(value):.3f}", "")
    for key, value in sorted(summary.items()):
        if key.startswith("summary/"):
            table.add_row(f"[italic]{key.removeprefix('summary/')} (leaderboard)[/]", f"{float(value):.3f}", "")
    if "accuracy" in summary:
        table.add_row("[bold]all items[/]", f"[bold]{float(summary['accuracy']):.3f}[/]",
                      str(int(summary.get("items", 0))))
    roles = _failures_by_role(summary)
    if roles:
        table.caption = f"failures by role: {roles}" + (f"; judge: {run.judge_kind}" if run.judge_kind else "")
    return table


# ---------------------------------------------------------------- run


@eval_app.command("run")
def run_command(
    suite: Annotated[str, typer.Argument(help="SUITE or SUITE/CATEGORY: bfcl/simple_python, stabletoolbench/G1_tool, "
                                              "synthetic.")],
    model: Annotated[str, typer.Option("--model", help="models:/name@alias, models:/name/N, runs:/..., an agent "
                                                       "directory, or an OpenAI-compatible http(s)://.../v1 URL.")],
    categories: CategoryOption = None,
    data_dir: DataDirOption = None,
    max_items: MaxItemsOption = None,
    endpoint_model: EndpointModelOption = None,
    api_key_env: ApiKeyEnvOption = None,
    max_steps: MaxStepsOption = None,
    max_new_tokens: MaxNewTokensOption = None,
    mode: ModeOption = None,
    api_url: ApiUrlOption = None,
    simulator_url: SimulatorOption = None,
    simulator_model: SimulatorModelOption = None,
    simulator_api_key_env: SimulatorKeyOption = None,
    judge_url: JudgeOption = None,
    judge_model: JudgeModelOption = None,
    judge_api_key_env: JudgeKeyOption = None,
    address: AddressOption = None,
    wait: Annotated[bool, typer.Option("--wait/--no-wait", help="Follow the job until it ends.")] = True,
) -> None:
    """Evaluate a model on a suite once, as a Ray job; every item's verdict is stored in SQL."""
    from mor.scheduler.service import RayEvalSubmitter

    console = Console()
    try:
        selection = _selection(suite, categories)
        options = _options(data_dir=str(data_dir) if data_dir else None, max_items=max_items,
                           endpoint_model=endpoint_model, api_key_env=api_key_env, max_steps=max_steps,
                           max_new_tokens=max_new_tokens, mode=mode, api_url=api_url, simulator_url=simulator_url,
                           simulator_model=simulator_model, simulator_api_key_env=simulator_api_key_env,
                           judge_url=judge_url, judge_model=judge_model, judge_api_key_env=judge_api_key_env)
        uri = _model_uri(model)
        settings = Settings()
        submitter = RayEvalSubmitter(settings, address=address)
        with console.status("Submitting the evaluation (starting the embedded Ray cluster if needed)…"):
            submitted = submitter.submit_run(suite=selection.suite, categories=selection.categories, model_uri=uri,
                                             options=options, triggered_by=f"user:{_user()}")
    except (ValueError, StoreError, ClusterError) as error:
        raise _fail(console, error) from None
    console.print(f"Submitted run [bold]{submitted.run_id}[/] ({selection.label} of {escape(uri)}) as job "
                  f"[bold]{submitted.job_id}[/]")
    if not wait:
        console.print(f"Follow it with: mor job logs {submitted.job_id} --follow; results: mor eval results")
        return
    try:
        render_progress(follow_progress(submitter.client, submitted.job_id), console)
        info = submitter.client.wait(submitted.job_id, timeout_s=60)
    except ClusterError as error:
        raise _fail(console, error) from None
    with _database(settings) as engine, session_scope(engine) as session:
        run = get_run(session=session, run_id=submitted.run_id)
        if run.status in ("queued", "running"):  # the job died before it could record anything
            error = f"job {submitted.job_id} ended {info.status} without finishing run {run.id}: {info.message or ''}"
            fail_lost_job(session=session, run_id=run.id, error=error, now=utcnow())
            session.refresh(run)
    if run.status != "succeeded":
        reason = (run.error or "").splitlines()[0] if run.error else f"job {info.status}: {info.message or ''}"
        console.print(f"[bold red]Run {run.id} {run.status}[/]: {escape(reason)}")
        console.print(f"See: mor job logs {submitted.job_id}")
        raise typer.Exit(1)
    console.print(_run_table(run))


# ---------------------------------------------------------------- schedules


@schedule_app.command("add")
def schedule_add(
    name: Annotated[str, typer.Argument(help="Schedule name, e.g. bfcl-nightly.")],
    cron: Annotated[str, typer.Option("--cron", help="Cron expression, e.g. '0 2 * * *' for 02:00 every night.")],
    suite: Annotated[str, typer.Option("--suite", help="SUITE or SUITE/CATEGORY, e.g. bfcl or bfcl/simple_python.")],
    model: Annotated[str, typer.Option("--model", help="Best an alias URI (models:/mor-agent@champion): each fire "
                                                       "evaluates what the alias points to then.")],
    categories: CategoryOption = None,
    timezone_name: Annotated[str, typer.Option("--timezone", help="IANA time zone of the cron times.")] = "UTC",
    catch_up: Annotated[str, typer.Option("--catch-up", help=f"Fires missed while no scheduler ran: "
                                                             f"{' | '.join(CATCH_UP_POLICIES)}.")] = "run_once",
    max_retries: Annotated[int, typer.Option("--max-retries", help="Retries of a failed run.")] = 0,
    paused: Annotated[bool, typer.Option("--paused", help="Create it paused.")] = False,
    data_dir: DataDirOption = None,
    max_items: MaxItemsOption = None,
    endpoint_model: EndpointModelOption = None,
    api_key_env: ApiKeyEnvOption = None,
    max_steps: MaxStepsOption = None,
    max_new_tokens: MaxNewTokensOption = None,
    mode: ModeOption = None,
    api_url: ApiUrlOption = None,
    simulator_url: SimulatorOption = None,
    simulator_model: SimulatorModelOption = None,
    simulator_api_key_env: SimulatorKeyOption = None,
    judge_url: JudgeOption = None,
    judge_model: JudgeModelOption = None,
    judge_api_key_env: JudgeKeyOption = None,
) -> None:
    """Add a cron schedule of an evaluation."""
    console = Console()
    try:
        selection = _selection(suite, categories)
        options = _options(data_dir=str(data_dir) if data_dir else None, max_items=max_items,
                           endpoint_model=endpoint_model, api_key_env=api_key_env, max_steps=max_steps,
                           max_new_tokens=max_new_tokens, mode=mode, api_url=api_url, simulator_url=simulator_url,
                           simulator_model=simulator_model, simulator_api_key_env=simulator_api_key_env,
                           judge_url=judge_url, judge_model=judge_model, judge_api_key_env=judge_api_key_env)
        uri = _model_uri(model)
        with _database(Settings()) as engine, session_scope(engine) as session:
            schedule = create_schedule(
                session=session, name=name, cron=cron, suite=selection.suite, model_uri=uri,
                categories=selection.categories, timezone=timezone_name, catch_up=catch_up, max_retries=max_retries,
                paused=paused, config=options, created_by=f"user:{_user()}",
            )
    except (ValueError, StoreError) as error:
        raise _fail(console, error) from None
    console.print(_schedules_table([schedule], {}))
    state = "paused" if schedule.paused else f"next fire {_when(schedule.next_fire_at)} UTC"
    console.print(f"[green]Schedule {escape(schedule.name)} added[/] ({state}); it runs while `mor eval serve` does.")


def _schedules_table(schedules: Sequence[Schedule], last_runs: dict[int, EvalRun]) -> Table:
    table = Table(title="schedules")
    for column in ("name", "cron", "suite", "model", "next fire (UTC)", "state", "catch-up", "retries", "last run"):
        table.add_column(column)
    for schedule in schedules:
        label = f"{schedule.suite}/{schedule.categories[0]}" if len(schedule.categories) == 1 else \
            f"{schedule.suite} ({len(schedule.categories)})" if schedule.categories else schedule.suite
        last = last_runs.get(schedule.id)
        table.add_row(
            escape(schedule.name),
            escape(schedule.cron) + ("" if schedule.timezone == "UTC" else f" {schedule.timezone}"),
            label, escape(schedule.model_uri), "" if schedule.paused else _when(schedule.next_fire_at),
            "[yellow]paused[/]" if schedule.paused else "active", schedule.catch_up, str(schedule.max_retries),
            f"#{last.id} {last.status}" if last is not None else "",
        )
    return table


@schedule_app.command("list")
def schedule_list(json_output: JsonOption = False) -> None:
    """Every schedule, its next fire time and its latest run."""
    console = Console()
    try:
        with _database(Settings()) as engine, session_scope(engine) as session:
            schedules = list_schedules(session=session)
            last_runs = {s.id: runs[0] for s in schedules if (runs := list_runs(session=session, schedule_id=s.id,
                                                                                  limit=1))}
    except StoreError as error:
        raise _fail(console, error) from None
    if json_output:
        print(json.dumps([{
            "name": s.name, "cron": s.cron, "timezone": s.timezone, "suite": s.suite, "categories": s.categories,
            "model_uri": s.model_uri, "paused": s.paused, "catch_up": s.catch_up, "max_retries": s.max_retries,
            "next_fire_at": s.next_fire_at.isoformat() if s.next_fire_at else None, "config": s.config,
            "last_run": {"id": last_runs[s.id].id, "status": last_runs[s.id].status} if s.id in last_runs else None,
        } for s in schedules], indent=2))
        return
    console.print(_schedules_table(schedules, last_runs))


def _set_paused(name: str, paused: bool) -> None:
    console = Console()
    try:
        with _database(Settings()) as engine, session_scope(engine) as session:
            schedule = set_paused(session=session, name=name, paused=paused)
    except StoreError as error:
        raise _fail(console, error) from None
    if paused:
        console.print(f"Schedule {escape(name)} paused: no run fires until it is resumed.")
    else:
        console.print(f"Schedule {escape(name)} resumed: next fire {_when(schedule.next_fire_at)} UTC "
                      "(times that fell in the pause are not caught up).")


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
    console = Console()
    try:
        with _database(Settings()) as engine, session_scope(engine) as session:
            remove_schedule(session=session, name=name)
    except StoreError as error:
        raise _fail(console, error) from None
    console.print(f"Schedule {escape(name)} removed; its runs stay (see mor eval results).")


# ---------------------------------------------------------------- results


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


def _history(session: Session, suites: Sequence[str], categories: Sequence[str], model: str | None,
             since: datetime | None) -> dict[str, list[ScorePoint]]:
    return {suite: score_history(session=session, suite=suite, model=model, categories=categories or None,
                                 since=since) for suite in suites}


@eval_app.command("results")
def results_command(
    suite: Annotated[str | None, typer.Option("--suite", help="Only this suite (bfcl) or category "
                                                              "(bfcl/simple_python).")] = None,
    model: Annotated[str | None, typer.Option("--model", help="Only this model: URI as given or registered "
                                                             "name.")] = None,
    since: Annotated[str | None, typer.Option("--since", help="Only runs since a date/time or an age "
                                                             "(7d, 12h).")] = None,
    status: Annotated[str | None, typer.Option("--status", help="Only runs with this status.")] = None,
    limit: Annotated[int, typer.Option("--limit", help="At most this many runs in the table.")] = 20,
    plot: Annotated[Path | None, typer.Option("--plot", help="Also draw the score over time per category "
                                                             "(PNG).")] = None,
    json_output: JsonOption = False,
) -> None:
    """Evaluation runs, newest first, with their accuracy and failures by role; `--plot` draws the trend."""
    console = Console()
    try:
        suite_name, category = (suite.split("/", 1) + [""])[:2] if suite else (None, "")
        if suite_name is not None:
            _selection(suite_name, [category] if category else ())
        after = _since(since)
        with _database(Settings()) as engine, session_scope(engine) as session:
            runs = list_runs(session=session, suite=suite_name, model=model, since=after, status=status)
            if category:
                runs = [run for run in runs if category in run.categories]
            history = None
            if plot is not None:
                suites = [suite_name] if suite_name else sorted({run.suite for run in runs})
                history = _history(session, suites, [category] if category else [], model, after)
    except (ValueError, StoreError) as error:
        raise _fail(console, error) from None
    shown = runs[:limit]
    if json_output:
        print(json.dumps([_run_dict(run) for run in shown], indent=2))
    else:
        table = Table(title=f"evaluation runs ({len(shown)} of {len(runs)})")
        for column in ("run", "finished (UTC)", "suite", "model", "status", "accuracy", "items", "failures by role",
                       "trigger"):
            table.add_column(column, justify="right" if column in ("run", "accuracy", "items") else "left")
        for run in shown:
            summary = run.summary or {}
            accuracy = f"{float(summary['accuracy']):.3f}" if "accuracy" in summary else ""
            status_text = {"succeeded": "[green]succeeded[/]", "failed": "[red]failed[/]"}.get(run.status, run.status)
            judge = f" ({run.judge_kind})" if run.judge_kind else ""
            table.add_row(str(run.id), _when(run.finished_at or run.created_at), _run_label(run) + judge,
                          escape(_model_label(run)), status_text, accuracy,
                          str(int(summary["items"])) if "items" in summary else "", _failures_by_role(summary),
                          escape(run.triggered_by))
        console.print(table)
    if plot is not None and history is not None:
        lines = _plot(history, plot)
        notes = Console(stderr=True) if json_output else console
        notes.print(f"Wrote {plot} ({lines} series, score over time per category)")


# ---------------------------------------------------------------- compare


def _accuracy(passed: int, total: int) -> str:
    return f"{passed / total:.3f} ({passed}/{total})" if total else "—"


def _comparison_dict(comparison: RunComparison) -> dict[str, Any]:
    return {
        "run_a": _run_dict(comparison.run_a),
        "run_b": _run_dict(comparison.run_b),
        "categories": [{"category": c.category, "passed_a": c.passed_a, "total_a": c.total_a, "passed_b": c.passed_b,
                        "total_b": c.total_b, "accuracy_a": c.accuracy_a, "accuracy_b": c.accuracy_b,
                        "delta": c.delta} for c in comparison.categories],
        "flipped": [item.__dict__ for item in comparison.flipped],
        "fixed": len(comparison.fixed),
        "broken": len(comparison.broken),
    }


@eval_app.command("compare")
def compare_command(
    run_a: Annotated[int, typer.Argument(help="The earlier (baseline) run id.")],
    run_b: Annotated[int, typer.Argument(help="The later run id.")],
    max_items: Annotated[int, typer.Option("--max-flipped", help="List at most this many flipped items.")] = 50,
    json_output: JsonOption = False,
) -> None:
    """Per-category accuracy deltas (B − A) and the items whose verdict flipped between two runs."""
    console = Console()
    try:
        with _database(Settings()) as engine, session_scope(engine) as session:
            comparison = compare_runs(session=session, run_a=run_a, run_b=run_b)
    except (ValueError, StoreError) as error:
        raise _fail(console, error) from None
    if json_output:
        print(json.dumps(_comparison_dict(comparison), indent=2, default=str))
        return
    a, b = comparison.run_a, comparison.run_b
    for tag, run in (("A", a), ("B", b)):
        console.print(f"[bold]{tag}[/] run {run.id}: {_run_label(run)} of {escape(_model_label(run))}, {run.status}, "
                      f"{_when(run.finished_at or run.created_at)} UTC")
    table = Table(title=f"run {a.id} → run {b.id}")
    for column in ("category", "A", "B", "Δ"):
        table.add_column(column, justify="left" if column == "category" else "right")
    for delta in comparison.categories:
        change = "" if delta.delta is None else f"{delta.delta:+.3f}"
        style = "green" if (delta.delta or 0) > 0 else "red" if (delta.delta or 0) < 0 else ""
        table.add_row(delta.category, _accuracy(delta.passed_a, delta.total_a),
                      _accuracy(delta.passed_b, delta.total_b), f"[{style}]{change}[/]" if style else change)
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


# ---------------------------------------------------------------- serve


@eval_app.command("serve")
def serve_command(
    address: AddressOption = None,
    owner_id: Annotated[str | None, typer.Option("--owner-id", help="Stable id of this scheduler (e.g. the pod name) "
                                                                    "for instant recovery after a restart.")] = None,
    poll: Annotated[float, typer.Option("--poll", help="Seconds between checks at most.")] = 10.0,
    retry_delay: Annotated[float, typer.Option("--retry-delay", help="Seconds before a failed run is retried.")] = 60.0,
    once: Annotated[bool, typer.Option("--once", help="One pass (fire what is due), then exit.")] = False,
    data_dir: DataDirOption = None,
) -> None:
    """Run the evaluation scheduler: fire due schedules as Ray jobs until stopped (Ctrl-C or SIGTERM)."""
    from mor.scheduler.service import serve

    console = Console()
    settings = Settings()
    if data_dir is not None:
        if not data_dir.expanduser().is_dir():
            raise _fail(console, _UsageError(f"--data-dir: {str(data_dir)!r} is not a directory"))
        settings = settings.model_copy(update={"benchmarks_dir": data_dir.expanduser().resolve()})
    if poll <= 0 or retry_delay < 0:
        raise _fail(console, _UsageError(f"--poll: got {poll}, must be > 0; --retry-delay: got {retry_delay}, "
                                         "must be >= 0"))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    console.print(f"Evaluation scheduler on {escape(_url_text(settings.db_url))}"
                  + ("" if once else f", polling every {poll:g} s; Ctrl-C stops it"))
    try:
        scheduler = serve(settings, address=address, owner_id=owner_id, poll_seconds=poll, once=once,
                          retry_delay=timedelta(seconds=retry_delay))
    except (StoreError, ClusterError) as error:
        raise _fail(console, error) from None
    console.print(f"Scheduler {escape(scheduler.owner_id)} stopped.")


def _url_text(url: str) -> str:
    """A database URL with its password hidden."""
    return make_url(url).render_as_string(hide_password=True)
