"""Metadata database: engines per URL, SQLite tuning, and migrations applied on start.

SQLite gets WAL, a busy timeout and foreign keys so several processes can write at once;
PostgreSQL is used through psycopg 3. Migrations run once per engine and process.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from shipyard.errors import BackendError, ConfigError, did_you_mean

metadata = sa.MetaData()

#: The newest migration; a test checks it equals Alembic's head.
HEAD_REVISION = "0005"

SUPPORTED_SCHEMES = ("sqlite", "postgresql+psycopg")

_engines: dict[str, Engine] = {}
_migrated: set[str] = set()
_lock = threading.Lock()


def now_ms() -> int:
    """Milliseconds since the epoch, UTC: how every timestamp is stored."""
    return time.time_ns() // 1_000_000


def mask_url(url: str) -> str:
    """The URL with any password replaced by ***, for reprs and errors."""
    try:
        return sa.make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "<unparsable url>"


def _check_scheme(url: str) -> sa.URL:
    try:
        parsed = sa.make_url(url)
    except Exception as exc:
        raise ConfigError(
            f"SHIPYARD_DB '{url}' is not a database URL.",
            hint="Use sqlite:///path/to/shipyard.db or postgresql+psycopg://user@host/db.",
        ) from exc
    scheme = parsed.drivername
    if scheme == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    elif scheme not in SUPPORTED_SCHEMES:
        raise ConfigError(
            f"Unknown scheme '{scheme}' in SHIPYARD_DB. Supported: "
            f"{', '.join(SUPPORTED_SCHEMES)}.{did_you_mean(scheme, SUPPORTED_SCHEMES)}"
        )
    return parsed


def _tune_sqlite(dbapi_conn: Any, _record: Any) -> None:
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=60000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _begin_immediate(conn: Any) -> None:
    # Take the write lock at BEGIN, so two writers queue on busy_timeout instead of one
    # failing with "database is locked" when it upgrades a read transaction.
    conn.exec_driver_sql("BEGIN IMMEDIATE")


def engine_for(url: str, *, migrate: bool = True) -> Engine:
    """The process-wide engine for ``url``, migrated to the newest schema on first use."""
    with _lock:
        engine = _engines.get(url)
        if engine is None:
            engine = _create_engine(url)
            _engines[url] = engine
        if migrate and url not in _migrated:
            upgrade(engine)
            _migrated.add(url)
    return engine


def _create_engine(url: str) -> Engine:
    parsed = _check_scheme(url)
    if parsed.drivername == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(parsed, connect_args={"timeout": 60, "check_same_thread": False})
        sa.event.listen(engine, "connect", _tune_sqlite)
        # pysqlite's own transaction handling is switched off so BEGIN IMMEDIATE is ours.
        sa.event.listen(engine, "connect", lambda c, _r: setattr(c, "isolation_level", None))
        sa.event.listen(engine, "begin", _begin_immediate)
        return engine
    return sa.create_engine(parsed, pool_pre_ping=True, pool_size=5, max_overflow=10)


def dispose_all() -> None:
    """Close every pooled connection (after fork, or in tests)."""
    with _lock:
        for engine in _engines.values():
            engine.dispose()
        _engines.clear()
        _migrated.clear()


def current_revision(engine: Engine) -> str | None:
    """The schema revision stored in the database, or None for an empty database."""
    with engine.connect() as conn:
        if not sa.inspect(conn).has_table("alembic_version"):
            return None
        return conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()


def upgrade(engine: Engine) -> None:
    """Apply pending Alembic migrations; cheap when the schema is already current."""
    try:
        if current_revision(engine) == HEAD_REVISION:
            return
        from alembic import command
        from alembic.config import Config

        config = Config()
        config.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
        with engine.begin() as conn:
            config.attributes["connection"] = conn
            command.upgrade(config, "head")
    except sa.exc.OperationalError as exc:
        raise BackendError(
            f"Cannot migrate the metadata store {mask_url(str(engine.url))}: {exc.orig}"
        ) from exc


def load_schema() -> sa.MetaData:
    """Import every component's tables onto :data:`metadata` and return it."""
    import shipyard.features.schema
    import shipyard.monitoring.schema
    import shipyard.pipelines.schema
    import shipyard.registry.schema
    import shipyard.security.schema
    import shipyard.store.schema
    import shipyard.tracking.schema  # noqa: F401

    return metadata
