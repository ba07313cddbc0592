"""`mor model list | show | promote`: registered agents, one version in full, and promotion by alias.

The path of a model: a train job registers version N with its spec's alias (`candidate`); `mor eval run` evaluates
`models:/NAME@candidate`; `mor model promote NAME N --alias champion` moves `champion` to it; `mor serve
models:/NAME@champion` serves it.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from mor.cli.render import JsonOption, make_console, print_json, print_table
from mor.settings import Settings

__all__ = ["model_app"]

model_app = typer.Typer(
    help="Registered agents in MLflow: list them, show a version in full, promote a version by alias.",
    no_args_is_help=True,
)

#: The metrics of an evaluation shown in the summary (the rest are in --json and the MLflow run).
_HEADLINE = ("accuracy", "call_accuracy", "answer_accuracy", "items")


def _fail(console: Console, error: Exception, code: int = 1) -> typer.Exit:
    console.print(f"[bold red]Error:[/] {escape(str(error))}")
    return typer.Exit(code)


def _time(value: Any) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value is not None else ""


def _aliases_text(aliases: dict[str, str]) -> str:
    return ", ".join(f"@{alias} → {version}" for alias, version in sorted(aliases.items()))


@model_app.command("list")
def list_command(
    name: Annotated[
        str | None, typer.Argument(help="A registered model: list its versions instead of the models.")
    ] = None,
    json_output: JsonOption = False,
) -> None:
    """Registered models with their aliases and newest version; with NAME, that model's versions, newest first."""
    from mor.registry import RegistryError
    from mor.registry.catalog import list_models, list_versions

    console = make_console()
    settings = Settings()
    try:
        if name is not None:
            versions = list_versions(settings, name)
        else:
            models = list_models(settings)
    except RegistryError as error:
        raise _fail(console, error) from None
    if name is not None:
        if json_output:
            print_json([asdict(version) | {"uri": version.uri} for version in versions])
            return
        table = Table(title=f"versions of {name} ({len(versions)}, newest first)")
        for column in ("version", "aliases", "status", "created (UTC)", "MLflow run", "job"):
            table.add_column(column, no_wrap=column != "aliases", justify="right" if column == "version" else "left")
        for version in versions:
            table.add_row(
                version.version,
                ", ".join(f"@{alias}" for alias in version.aliases),
                version.status or "",
                _time(version.created),
                version.run_id or "",
                version.job_id or "",
            )
        print_table(console, table)
        return
    if json_output:
        print_json([asdict(model) for model in models])
        return
    table = Table(title=f"registered models ({len(models)}) in {settings.tracking_uri}")
    for column in ("name", "versions", "newest", "aliases", "updated (UTC)", "description"):
        table.add_column(
            column,
            no_wrap=column in ("name", "versions", "newest", "updated (UTC)"),
            justify="right" if column in ("versions", "newest") else "left",
        )
    for model in models:
        table.add_row(
            escape(model.name),
            str(model.versions),
            model.latest_version or "",
            _aliases_text(model.aliases),
            _time(model.updated),
            escape(model.description or ""),
        )
    print_table(console, table)
    if not models:
        console.print("No registered model yet: `mor job submit jobs/quickstart.yaml` trains and registers one.")


def _evaluation_runs(name: str, version: str) -> list[Any]:
    """The results database's runs of this version (by the version its URI resolved to), newest first."""
    from mor.cli.eval_common import database
    from mor.store import StoreError, list_runs, session_scope

    try:
        with database(Settings()) as engine, session_scope(engine) as session:
            return list_runs(session=session, model=name, model_version=version)
    except StoreError:
        return []


def _show_data(details: Any, runs: list[Any]) -> dict[str, Any]:
    from mor.cli.eval_common import run_dict

    data = asdict(details)
    data["version"] |= {"uri": details.version.uri}
    data["evaluation_runs"] = [run_dict(run) for run in runs]
    return data


def _print_details(console: Console, details: Any, runs: list[Any]) -> None:
    from mor.cli.eval_common import model_label, run_label, when
    from mor.evals.record import canonical_metrics

    version = details.version
    head = Table(title=f"{version.uri}", show_header=False)
    head.add_column("what", style="bold", no_wrap=True)
    head.add_column("value")
    head.add_row("aliases", ", ".join(f"models:/{version.name}@{alias}" for alias in version.aliases) or "none")
    head.add_row("status", version.status or "unknown")
    head.add_row("created", f"{_time(version.created)} UTC")
    if version.run_id:
        run = f"{version.run_id}" + (f" ({details.run_name}, {details.run_status})" if details.run_name else "")
        head.add_row("MLflow run", run + (f" in experiment {escape(details.experiment)}" if details.experiment else ""))
    if version.job_id:
        head.add_row("job", version.job_id)
    head.add_row("source", escape(version.source))
    if version.description:
        head.add_row("description", escape(version.description))
    print_table(console, head)

    if details.evals or runs:
        scores = Table(title="evaluations")
        for column in ("where", "suite", "accuracy", "items", "other"):
            scores.add_column(
                column, no_wrap=column != "other", justify="right" if column in ("accuracy", "items") else "left"
            )
        for suite, metrics in sorted(details.evals.items()):
            accuracy = metrics.get("accuracy")
            other = ", ".join(
                f"{key} {metrics[key]:.3f}" for key in ("call_accuracy", "answer_accuracy") if key in metrics
            )
            scores.add_row(
                "training job",
                suite,
                f"{accuracy:.3f}" if accuracy is not None else "",
                f"{metrics['items']:.0f}" if "items" in metrics else "",
                other,
            )
        for run in runs:
            summary = canonical_metrics(run.summary)
            scores.add_row(
                f"run {run.id} ({escape(run.triggered_by)})",
                run_label(run),
                f"{float(summary['accuracy']):.3f}" if "accuracy" in summary else run.status,
                f"{int(summary['items'])}" if "items" in summary else "",
                f"{escape(model_label(run))}, {when(run.finished_at or run.created_at)} UTC",
            )
        print_table(console, scores)
    else:
        console.print(
            f"No evaluation of this version yet: mor eval run bfcl/simple_python --model {version.uri} --max-items 20"
        )

    if details.datasets:
        data = Table(title="data sets (MLflow dataset inputs of the training run)")
        for column in ("name", "digest", "context", "train", "test", "source"):
            data.add_column(column, no_wrap=column in ("name", "digest", "train", "test"))
        for dataset in details.datasets:
            profile = dataset.profile
            data.add_row(
                escape(dataset.name),
                dataset.digest,
                dataset.context or "",
                str(profile.get("train", "")),
                str(profile.get("test", "")),
                escape(dataset.source),
            )
        print_table(console, data)

    if details.metrics:
        metrics = Table(title="training metrics (latest values)")
        metrics.add_column("metric", no_wrap=True)
        metrics.add_column("value", justify="right", no_wrap=True)
        for key, value in details.metrics.items():
            metrics.add_row(escape(key), f"{value:.6g}")
        print_table(console, metrics)

    if details.params:
        params = Table(title=f"params ({len(details.params)}, the flattened spec)")
        params.add_column("param", no_wrap=True)
        params.add_column("value")
        for key, value in details.params.items():
            params.add_row(escape(key), escape(value))
        print_table(console, params)


@model_app.command("show")
def show_command(
    model: Annotated[
        str,
        typer.Argument(
            metavar="NAME[@ALIAS|/VERSION]",
            help="A version: mor-agent@champion, mor-agent/3, or mor-agent for its newest complete version.",
        ),
    ],
    json_output: JsonOption = False,
) -> None:
    """One version in full: aliases, params, metrics, evaluation scores and the data it was trained on.

    Params and metrics are its training run's; the scores are the training job's evaluation and every
    `mor eval run` of this version; the data sets are the MLflow dataset inputs of the training run.
    """
    from mor.registry import RegistryError
    from mor.registry.catalog import describe_version, parse_model_ref

    console = make_console()
    try:
        ref = parse_model_ref(model)
    except RegistryError as error:
        raise _fail(console, error, 2) from None
    try:
        details = describe_version(Settings(), ref)
    except RegistryError as error:
        raise _fail(console, error) from None
    runs = _evaluation_runs(details.version.name, details.version.version)
    if json_output:
        print_json(_show_data(details, runs))
        return
    _print_details(console, details, runs)


@model_app.command("promote")
def promote_command(
    name: Annotated[str, typer.Argument(help="The registered model, e.g. mor-agent.")],
    version: Annotated[str, typer.Argument(help="The version to promote, e.g. 3 (`mor model list NAME`).")],
    alias: Annotated[
        str, typer.Option("--alias", metavar="ALIAS", help="The alias to point at the version.")
    ] = "champion",
    json_output: JsonOption = False,
) -> None:
    """Point an alias (default champion) at a version; the alias moves from the version it named before.

    These are MLflow's alias semantics: an alias names one version at a time. Schedules and servers that use
    models:/NAME@ALIAS get the new version the next time they load it.
    """
    from mor.registry import RegistryError
    from mor.registry.aliases import set_alias

    console = make_console()
    try:
        move = set_alias(Settings(), name, version, alias)
    except RegistryError as error:
        raise _fail(console, error, 2 if isinstance(error, ValueError) else 1) from None
    if json_output:
        print_json(asdict(move) | {"uri": move.uri})
        return
    if not move.changed:
        console.print(f"{move.uri} already names version {move.version}; nothing changed.")
    elif move.previous is None:
        console.print(f"{move.uri} → version {move.version} (the alias is new).")
    else:
        console.print(f"{move.uri} → version {move.version} (moved from version {move.previous}).")
    runs = _evaluation_runs(name, version)
    if not runs:
        console.print(
            f"[yellow]Note:[/] the results database has no evaluation of version {version}; "
            f"e.g. mor eval run bfcl/simple_python --model models:/{name}/{version} --max-items 20"
        )
    console.print(f"Serve it: mor serve {move.uri}")
