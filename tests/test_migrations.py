"""The migrations create exactly the schema the code declares, on every backend."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

import shipyard.store.db as db
from shipyard.errors import ConfigError


def test_head_revision_constant_matches_alembic_head() -> None:
    config = Config()
    config.set_main_option("script_location", str(Path(db.__file__).parent / "migrations"))
    assert ScriptDirectory.from_config(config).get_current_head() == db.HEAD_REVISION


def test_migrated_database_matches_declared_tables(db_url: str) -> None:
    engine = db.engine_for(db_url)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), db.load_schema())
    assert diff == []
    assert db.current_revision(engine) == db.HEAD_REVISION


def test_default_workspace_exists_after_migration(db_url: str) -> None:
    from shipyard.store.workspaces import list_workspaces

    assert "default" in list_workspaces(db.engine_for(db_url))


def test_sqlite_is_tuned_for_concurrent_writers(tmp_path: Path) -> None:
    engine = db.engine_for(f"sqlite:///{tmp_path / 'tuned.db'}")
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 60000


def test_unknown_scheme_suggests_the_supported_one() -> None:
    with pytest.raises(ConfigError, match=r"Unknown scheme 'postgres\+psycopg2'.*Supported"):
        db.engine_for("postgres+psycopg2://u@h/db")


def test_upgrade_is_idempotent(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'twice.db'}"
    engine = db.engine_for(url)
    db.upgrade(engine)
    with engine.connect() as conn:
        versions = conn.execute(sa.text("SELECT count(*) FROM alembic_version")).scalar()
    assert versions == 1
