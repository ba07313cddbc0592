"""`mor eval serve`: the evaluation scheduler service, firing due schedules as Ray jobs."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Annotated

import typer
from rich.markup import escape
from sqlalchemy.engine import make_url

from mor.cli.eval_common import AddressOption, DataDirOption, UsageError, fail
from mor.cli.render import make_console
from mor.cluster import ClusterError
from mor.settings import Settings
from mor.store import StoreError

__all__ = ["serve_command"]


def serve_command(
    address: AddressOption = None,
    owner_id: Annotated[
        str | None,
        typer.Option(
            "--owner-id",
            metavar="ID",
            help="Stable id of this scheduler (e.g. the pod name) for instant recovery after a restart.",
        ),
    ] = None,
    poll: Annotated[float, typer.Option("--poll", metavar="SECONDS", help="Seconds between checks at most.")] = 10.0,
    retry_delay: Annotated[
        float, typer.Option("--retry-delay", metavar="SECONDS", help="Seconds before a failed run is retried.")
    ] = 60.0,
    once: Annotated[bool, typer.Option("--once", help="One pass (fire what is due), then exit.")] = False,
    data_dir: DataDirOption = None,
) -> None:
    """Run the evaluation scheduler: fire due schedules as Ray jobs until stopped (Ctrl-C or SIGTERM)."""
    from mor.scheduler.service import serve

    console = make_console()
    settings = Settings()
    if data_dir is not None:
        if not data_dir.expanduser().is_dir():
            raise fail(console, UsageError(f"--data-dir: {str(data_dir)!r} is not a directory"))
        settings = settings.model_copy(update={"benchmarks_dir": data_dir.expanduser().resolve()})
    if poll <= 0 or retry_delay < 0:
        raise fail(
            console, UsageError(f"--poll: got {poll}, must be > 0; --retry-delay: got {retry_delay}, must be >= 0")
        )
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    console.print(
        f"Evaluation scheduler on {escape(_url_text(settings.db_url))}"
        + ("" if once else f", polling every {poll:g} s; Ctrl-C stops it")
    )
    try:
        scheduler = serve(
            settings,
            address=address,
            owner_id=owner_id,
            poll_seconds=poll,
            once=once,
            retry_delay=timedelta(seconds=retry_delay),
        )
    except (StoreError, ClusterError) as error:
        raise fail(console, error) from None
    console.print(f"Scheduler {escape(scheduler.owner_id)} stopped.")


def _url_text(url: str) -> str:
    """A database URL with its password hidden."""
    return make_url(url).render_as_string(hide_password=True)
