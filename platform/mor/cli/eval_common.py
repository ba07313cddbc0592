"""What the `mor eval` commands share: the run options (declared once), value checks, the results database and
how a run is shown."""

from __future__ import annotations

import functools
import getpass
import inspect
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal, get_type_hints

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from sqlalchemy import Engine

from mor.cli.render import JsonOption, failures_text
from mor.evals.record import canonical_metrics
from mor.evals.runner import RUN_OPTIONS, SuiteSelection, check_options, is_endpoint, parse_suite
from mor.evals.stabletoolbench import MODES as STABLETOOLBENCH_MODES
from mor.settings import Settings
from mor.store import EvalRun, InvalidValueError, make_engine, upgrade

__all__ = [
    "AddressOption",
    "CategoryOption",
    "DataDirOption",
    "JsonOption",
    "NO_RUN_OPTIONS",
    "RunOptions",
    "UsageError",
    "database",
    "fail",
    "model_label",
    "model_uri",
    "run_dict",
    "run_label",
    "run_table",
    "selection",
    "user",
    "when",
    "with_run_options",
]

DataDirOption = Annotated[
    Path | None,
    typer.Option(
        "--data-dir",
        metavar="DIR",
        help="Directory holding bfcl/ and stabletoolbench/ (default: MOR_BENCHMARKS_DIR).",
    ),
]
AddressOption = Annotated[
    str | None,
    typer.Option(
        "--address",
        metavar="URL",
        help="Ray dashboard address (http://host:8265); default RAY_ADDRESS or this MOR_HOME's embedded Ray.",
    ),
]
CategoryOption = Annotated[
    list[str] | None,
    typer.Option(
        "--category",
        "-c",
        metavar="CATEGORY",
        help="A category of the suite (repeat for several); default all of them.",
    ),
]


class UsageError(ValueError):
    """A command-line value that breaks a rule (exit code 2)."""


@dataclass(frozen=True)
class RunOptions:
    """The run options of `mor eval run` and `mor eval schedule add`, one flag each (`--max-items`, ...); what
    each means is `mor.evals.runner.RUN_OPTIONS`."""

    data_dir: Path | None = None
    max_items: int | None = None
    endpoint_model: str | None = None
    api_key_env: str | None = None
    max_steps: int | None = None
    max_new_tokens: int | None = None
    mode: str | None = None
    api_url: str | None = None
    simulator_url: str | None = None
    simulator_model: str | None = None
    simulator_api_key_env: str | None = None
    judge_url: str | None = None
    judge_model: str | None = None
    judge_api_key_env: str | None = None

    def checked(self) -> dict[str, Any]:
        """The options given, checked (`check_options`), as stored on a run or schedule; raises UsageError."""
        if self.data_dir is not None and not self.data_dir.expanduser().is_dir():
            raise UsageError(f"--data-dir: {str(self.data_dir)!r} is not a directory; give the directory holding bfcl/")
        values = {key: str(value) if isinstance(value, Path) else value for key, value in asdict(self).items()}
        try:
            return check_options({key: value for key, value in values.items() if value is not None})
        except ValueError as error:
            raise UsageError(str(error)) from None


#: No run option given: the default of a command's `options` parameter.
NO_RUN_OPTIONS = RunOptions()


def _metavar(name: str) -> str | None:
    """What a run option takes, in words, by its name (`--judge-url URL`, `--api-key-env VAR`)."""
    for suffix, word in (("_url", "URL"), ("_env", "VAR"), ("_model", "NAME")):
        if name.endswith(suffix):
            return word
    return None


def _option_parameters() -> list[inspect.Parameter]:
    """One Typer option per `RunOptions` field: `--field-name`, typed as the field (`--mode` as its choices), help
    from `RUN_OPTIONS`."""
    types: dict[str, Any] = get_type_hints(RunOptions)
    types["mode"] = Literal[tuple(STABLETOOLBENCH_MODES)] | None  # type: ignore[valid-type]
    parameters = []
    for field in fields(RunOptions):
        flag = typer.Option(
            f"--{field.name.replace('_', '-')}", metavar=_metavar(field.name), help=RUN_OPTIONS[field.name]
        )
        option = DataDirOption if field.name == "data_dir" else Annotated[types[field.name], flag]
        parameters.append(
            inspect.Parameter(field.name, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=None, annotation=option)
        )
    return parameters


def with_run_options(command: Callable[..., None]) -> Callable[..., None]:
    """Turn `command`'s `options: RunOptions` parameter into the run-option flags, in its place, and build the
    `RunOptions` from them on each call."""
    signature = inspect.signature(command, eval_str=True)
    flags = _option_parameters()
    parameters: list[inspect.Parameter] = []
    for parameter in signature.parameters.values():
        parameters.extend(flags if parameter.name == "options" else [parameter])

    @functools.wraps(command)
    def wrapper(**values: Any) -> None:
        options = RunOptions(**{flag.name: values.pop(flag.name) for flag in flags})
        command(**values, options=options)

    wrapper.__signature__ = signature.replace(parameters=parameters)  # type: ignore[attr-defined]
    wrapper.__annotations__ = {p.name: p.annotation for p in parameters} | {"return": signature.return_annotation}
    return wrapper


def fail(console: Console, error: Exception) -> typer.Exit:
    """Print `error`; the exit to raise: 2 for a bad value, 1 for anything else."""
    console.print(f"[bold red]Error:[/] {escape(str(error))}")
    usage = isinstance(error, (UsageError, InvalidValueError)) or type(error) is ValueError
    return typer.Exit(2 if usage else 1)


@contextmanager
def database(settings: Settings) -> Iterator[Engine]:
    """The results database of `settings`, migrated to head (a fresh MOR_HOME gets its tables)."""
    upgrade(settings.db_url)
    engine = make_engine(settings.db_url)
    try:
        yield engine
    finally:
        engine.dispose()


def user() -> str:
    """Who runs the command (`unknown` where there is no login name)."""
    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001 - no login name (containers): still record who, as best known
        return "unknown"


def selection(suite: str, categories: Sequence[str] | None) -> SuiteSelection:
    """The suite and categories named on the command line; raises UsageError."""
    try:
        return parse_suite(suite, categories or ())
    except ValueError as error:
        raise UsageError(str(error)) from None


def model_uri(model: str) -> str:
    """A model URI as the job will see it: a local agent directory becomes absolute (the job runs elsewhere)."""
    if is_endpoint(model) or model.startswith(("models:/", "runs:/")):
        return model
    path = Path(model.removeprefix("file://")).expanduser()
    if not path.is_dir():
        raise UsageError(
            f"--model: got {model!r}, neither a models:/ or runs:/ URI, an http(s) endpoint, nor an agent directory; "
            "e.g. --model models:/mor-agent@candidate"
        )
    return str(path.resolve())


def when(value: datetime | None) -> str:
    """A time as `YYYY-MM-DD HH:MM:SS` UTC (empty for None)."""
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S") if value is not None else ""


def model_label(run: EvalRun) -> str:
    """The evaluated model: `name vN (alias URI)` for a registered version, else the URI."""
    if run.model is not None and run.model.version is not None:
        return f"{run.model.name} v{run.model.version}" + (f" ({run.model_uri})" if "@" in run.model_uri else "")
    return run.model_uri


def run_label(run: EvalRun) -> str:
    """`suite/category` for a one-category run, else the suite."""
    return f"{run.suite}/{run.categories[0]}" if len(run.categories) == 1 else run.suite


def run_dict(run: EvalRun) -> dict[str, Any]:
    """A run as JSON-ready data (its summary in today's metric names)."""
    return {
        "id": run.id,
        "suite": run.suite,
        "categories": list(run.categories),
        "status": run.status,
        "model_uri": run.model_uri,
        "model_name": run.model.name if run.model else None,
        "model_version": run.model.version if run.model else None,
        "triggered_by": run.triggered_by,
        "scheduled_for": run.scheduled_for.isoformat() if run.scheduled_for else None,
        "attempt": run.attempt,
        "ray_job_id": run.ray_job_id,
        "judge_kind": run.judge_kind,
        "summary": canonical_metrics(run.summary) if run.summary is not None else None,
        "mlflow_run_id": run.mlflow_run_id,
        "error": run.error,
        "created_at": run.created_at.isoformat(),
        "finished_at": run.finished_at.isoformat() if run.finished_at else None,
    }


def run_table(run: EvalRun) -> Table:
    """One finished run: per-category accuracy and failures by role."""
    summary = canonical_metrics(run.summary)
    table = Table(title=f"run {run.id}: {run_label(run)} — {run.status}")
    for column in ("category", "accuracy", "items"):
        table.add_column(column, justify="left" if column == "category" else "right", no_wrap=True)
    for key, value in sorted(summary.items()):
        if key.startswith("accuracy/"):
            table.add_row(key.removeprefix("accuracy/"), f"{float(value):.3f}", "")
    for key, value in sorted(summary.items()):
        if key.startswith("summary/"):
            table.add_row(f"[italic]{key.removeprefix('summary/')} (leaderboard)[/]", f"{float(value):.3f}", "")
    if "accuracy" in summary:
        table.add_row(
            "[bold]all items[/]", f"[bold]{float(summary['accuracy']):.3f}[/]", str(int(summary.get("items", 0)))
        )
    roles = failures_text(summary)
    if roles:
        table.caption = f"failures by role: {roles}" + (f"; judge: {run.judge_kind}" if run.judge_kind else "")
    return table
