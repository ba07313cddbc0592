"""Alembic environment of mor's results database.

Two ways in: `mor.store.upgrade(url)` hands over an open connection (config.attributes["connection"]); the
`alembic` command line (alembic.ini at the repository root) takes `-x url=...`, else the URL of mor's Settings.
"""

from __future__ import annotations

from logging.config import fileConfig

from alembic import context
from sqlalchemy import Connection
from sqlalchemy.pool import NullPool

from mor.store.engine import make_engine, normalize_url
from mor.store.models import Base

config = context.config
target_metadata = Base.metadata


def _url_from_command_line() -> str:
    url = context.get_x_argument(as_dictionary=True).get("url")
    if url:
        return url
    from mor.settings import Settings  # entry point: settings are built here, not at import time

    return Settings().db_url


def _configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",  # SQLite alters tables by copying them
        compare_type=True,
    )


def _run_offline() -> None:
    context.configure(
        url=normalize_url(_url_from_command_line()).render_as_string(hide_password=False),
        target_metadata=target_metadata,
        literal_binds=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def _run_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure(connection)
        with context.begin_transaction():
            context.run_migrations()
        return
    if config.config_file_name is not None:
        fileConfig(config.config_file_name, disable_existing_loggers=False)
    engine = make_engine(_url_from_command_line(), foreign_keys=False, poolclass=NullPool)
    try:
        with engine.begin() as own_connection:
            _configure(own_connection)
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()


if context.is_offline_mode():
    _run_offline()
else:
    _run_online()
