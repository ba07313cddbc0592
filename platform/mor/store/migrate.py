"""Run the Alembic migrations in `migrations/` programmatically, from any working directory."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, text
from sqlalchemy.engine import URL
from sqlalchemy.pool import NullPool

from mor.store.engine import make_engine
from mor.store.errors import StoreError

__all__ = ["alembic_config", "current_revision", "downgrade", "head_revision", "migrations_dir", "upgrade"]

# platform/mor/store/migrate.py -> the repository root holds migrations/.
_DEFAULT_MIGRATIONS_DIR = Path(__file__).resolve().parents[3] / "migrations"


def migrations_dir() -> Path:
    """The Alembic script directory (`<repo>/migrations`)."""
    if not (_DEFAULT_MIGRATIONS_DIR / "env.py").is_file():
        raise StoreError(
            f"migrations: no Alembic environment at {_DEFAULT_MIGRATIONS_DIR}; mor runs migrations from a source "
            "checkout (pip install -e .); install it that way or run `alembic upgrade head` from the repository"
        )
    return _DEFAULT_MIGRATIONS_DIR


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic config pointing at mor's migrations; `connection`, if given, is the one migrations use."""
    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


# Any constant shared by every mor process: the key of the PostgreSQL advisory lock held while migrating.
_MIGRATION_LOCK_KEY = 0x6D6F72  # "mor"


def _migrate(url: str | URL, run: Callable[[Config], None]) -> None:
    """Run `run` in one transaction that no other mor process migrates in at the same time.

    SQLite: mor's engines `BEGIN IMMEDIATE`, which takes the database's write lock. PostgreSQL: a transaction-
    scoped advisory lock. Either way a second process waits, then finds the schema already migrated, so every
    entry point (CLI, scheduler, evaluation jobs) may call `upgrade` at start-up.
    """
    engine = make_engine(url, foreign_keys=False, poolclass=NullPool)
    try:
        with engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK_KEY})
            run(alembic_config(connection))
    finally:
        engine.dispose()


def upgrade(url: str | URL, revision: str = "head") -> None:
    """Migrate the database at `url` up to `revision` (default: the newest); safe to call from many processes."""
    _migrate(url, lambda config: command.upgrade(config, revision))


def downgrade(url: str | URL, revision: str) -> None:
    """Migrate the database at `url` down to `revision` (`"base"` drops every mor table)."""
    _migrate(url, lambda config: command.downgrade(config, revision))


def current_revision(url: str | URL) -> str | None:
    """The revision the database at `url` is at; None for an empty (never migrated) database."""
    engine = make_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    finally:
        engine.dispose()


def head_revision() -> str:
    """The newest revision in `migrations/versions`."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:
        raise StoreError(f"migrations: no revision under {migrations_dir() / 'versions'}; restore the checkout")
    return head
