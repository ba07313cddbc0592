"""Migrations: up to head, down to base, up again, on SQLite and PostgreSQL; the schema equals the models."""

from __future__ import annotations

import re
import threading
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect
from sqlalchemy.pool import NullPool

from mor.store import Base, current_revision, downgrade, head_revision, make_engine, upgrade
from mor.store.migrate import alembic_config, migrations_dir

_TABLES = {"evaluated_models", "eval_runs", "item_results", "schedules", "schedule_fires"}


def _tables(url: str) -> set[str]:
    engine = make_engine(url, poolclass=NullPool)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def _schema_diff(url: str) -> list[object]:
    engine = make_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            return list(compare_metadata(context, Base.metadata))
    finally:
        engine.dispose()


def test_upgrade_downgrade_upgrade(database_url: str) -> None:
    assert current_revision(database_url) is None

    upgrade(database_url)
    assert current_revision(database_url) == head_revision() == "0001"
    assert _tables(database_url) == _TABLES | {"alembic_version"}

    downgrade(database_url, "base")
    assert current_revision(database_url) is None
    assert _tables(database_url) == {"alembic_version"}

    upgrade(database_url)
    assert current_revision(database_url) == head_revision()
    assert _tables(database_url) == _TABLES | {"alembic_version"}


def test_migrated_schema_equals_the_models(database_url: str) -> None:
    upgrade(database_url)
    assert _schema_diff(database_url) == []


def test_constraint_names_follow_the_convention(database_url: str) -> None:
    upgrade(database_url)
    engine = make_engine(database_url, poolclass=NullPool)
    try:
        inspector = inspect(engine)
        unique = {c["name"] for c in inspector.get_unique_constraints("schedule_fires")}
        indexes = {i["name"] for i in inspector.get_indexes("item_results")}
        foreign = {f["name"] for f in inspector.get_foreign_keys("eval_runs")}
    finally:
        engine.dispose()
    assert "uq_schedule_fires_schedule_id_scheduled_for" in unique
    assert "ix_item_results_suite_category_run" in indexes
    assert foreign == {
        "fk_eval_runs_model_id_evaluated_models",
        "fk_eval_runs_schedule_id_schedules",
        "fk_eval_runs_retry_of_eval_runs",
    }


def test_runs_from_any_working_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    url = f"sqlite:///{tmp_path / 'elsewhere.db'}"
    upgrade(url)
    assert current_revision(url) == head_revision()


def test_every_revision_has_a_line_in_the_notes() -> None:
    notes = (migrations_dir() / "NOTES.md").read_text(encoding="utf-8")
    revisions = [script.revision for script in ScriptDirectory.from_config(alembic_config()).walk_revisions()]
    assert revisions, "no revisions found"
    for revision in revisions:
        assert re.search(rf"^- `{revision}`", notes, flags=re.MULTILINE), f"migrations/NOTES.md lacks {revision}"


def test_one_linear_history() -> None:
    script = ScriptDirectory.from_config(alembic_config())
    assert len(script.get_heads()) == 1
    assert len(script.get_bases()) == 1


def test_concurrent_upgrades_are_safe(database_url: str) -> None:
    barrier = threading.Barrier(3)
    errors: list[BaseException] = []

    def _upgrade() -> None:
        try:
            barrier.wait(timeout=30)
            upgrade(database_url)
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=_upgrade) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    assert current_revision(database_url) == head_revision()
    assert _schema_diff(database_url) == []
