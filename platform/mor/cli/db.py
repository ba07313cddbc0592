"""`mor db …`: the results database (SQLite by default, PostgreSQL by MOR_DATABASE_URL)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape

from mor.cli.render import JsonOption, make_console, print_json
from mor.settings import Settings

__all__ = ["db_app"]

db_app = typer.Typer(help="Migrate and inspect the results database.", no_args_is_help=True)

UrlOption = Annotated[
    str | None,
    typer.Option(
        "--url", metavar="URL", help="SQLAlchemy URL (default: MOR_DATABASE_URL, else SQLite under MOR_HOME)."
    ),
]


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


@db_app.command("upgrade")
def upgrade_command(
    revision: Annotated[str, typer.Argument(help="Target revision.")] = "head",
    url: UrlOption = None,
) -> None:
    """Apply migrations up to REVISION (default: the newest)."""
    from mor.store import StoreError, current_revision, head_revision, upgrade

    console = make_console()
    target = url or Settings().db_url
    try:
        upgrade(target, revision)
        now = current_revision(target)
    except (StoreError, Exception) as error:  # noqa: BLE001 - any driver error is reported the same way
        console.print(f"[bold red]Error:[/] {escape(_safe_url(target))}: {escape(str(error))}")
        raise typer.Exit(1) from None
    console.print(f"{escape(_safe_url(target))}: at revision [bold]{now}[/] (head {head_revision()})")


@db_app.command("downgrade")
def downgrade_command(
    revision: Annotated[str, typer.Argument(help="Target revision ('base' drops every mor table).")],
    url: UrlOption = None,
) -> None:
    """Migrate down to REVISION."""
    from mor.store import current_revision, downgrade

    console = make_console()
    target = url or Settings().db_url
    downgrade(target, revision)
    console.print(f"{escape(_safe_url(target))}: at revision [bold]{current_revision(target)}[/]")


@db_app.command("current")
def current_command(url: UrlOption = None, json_output: JsonOption = False) -> None:
    """Print the database's revision and the newest one."""
    from mor.store import current_revision, head_revision

    target = url or Settings().db_url
    revision, head = current_revision(target), head_revision()
    if json_output:
        print_json({"url": _safe_url(target), "revision": revision, "head": head})
        return
    make_console().print(f"{escape(_safe_url(target))}: revision {revision} (head {head})")
