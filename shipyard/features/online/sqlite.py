"""The embedded online store: one SQLite file (stdlib ``sqlite3``, WAL), one table per view.

Each view's table is keyed by the encoded entity key (``WITHOUT ROWID``, so a lookup is
one B-tree descent) and has a typed column per feature; columns are added when a view
gains features. Each thread gets its own connection, and statements are prepared once
per connection (``sqlite3``'s statement cache): reads of any number of keys share one
statement by passing the keys as a JSON array.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shipyard.errors import BackendError, ConfigError
from shipyard.features.online.base import (
    ReadResult,
    decoder,
    entity_keys_of,
    from_micros,
    prepare_write,
    read_result,
    require_features,
    to_micros,
    view_features,
)

if TYPE_CHECKING:
    import pyarrow as pa

    from shipyard.features.definitions import FeatureView

__all__ = ["SqliteOnlineStore"]

_AFFINITY = {
    "Float32": "REAL",
    "Float64": "REAL",
    "Int32": "INTEGER",
    "Int64": "INTEGER",
    "Bool": "INTEGER",
    "UnixTimestamp": "INTEGER",
    "String": "TEXT",
    "Bytes": "BLOB",
}
_WATERMARKS = "_shipyard_watermarks"


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _table(view_name: str) -> str:
    return _quote(f"fv_{view_name}")


class SqliteOnlineStore:
    """Online store in a SQLite file.

    Example::

        store = open_online_store("sqlite:////srv/shipyard/online.db")

    Args:
        path: the database file; its folder is created when missing.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path).expanduser().absolute()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._lock = threading.Lock()
        self._connections: list[sqlite3.Connection] = []
        self._columns: dict[str, set[str]] = {}
        self._closed = False
        self._conn().execute(
            f"CREATE TABLE IF NOT EXISTS {_WATERMARKS} "
            "(view TEXT PRIMARY KEY, ts INTEGER NOT NULL) WITHOUT ROWID"
        )

    @classmethod
    def from_url(cls, url: str) -> SqliteOnlineStore:
        """A store for ``sqlite:///relative.db`` or ``sqlite:////absolute/path.db``."""
        path = url.split("://", 1)[1][1:] if "://" in url else url
        path = path.split("?", 1)[0]
        if not path or path == ":memory:":
            raise ConfigError(
                f"Online store URL '{url}' names no file.",
                hint="Use sqlite:////absolute/path/online.db (in-memory stores are not shared "
                "between threads).",
            )
        return cls(path)

    def __repr__(self) -> str:
        return f"SqliteOnlineStore('sqlite:///{self.path}')"

    # -- connections ----------------------------------------------------------------------

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is not None:
            return conn
        if self._closed:
            raise BackendError(f"{self!r} is closed.")
        try:
            conn = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False, cached_statements=512
            )
            conn.execute("PRAGMA busy_timeout = 30000")
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
        except sqlite3.Error as exc:
            raise BackendError(f"{self!r} cannot be opened: {exc}") from exc
        self._local.conn = conn
        with self._lock:
            self._connections.append(conn)
        return conn

    def close(self) -> None:
        """Close every thread's connection."""
        with self._lock:
            self._closed = True
            connections, self._connections = self._connections, []
        for conn in connections:
            conn.close()
        self._local = threading.local()

    # -- schema ---------------------------------------------------------------------------

    def _ensure_table(self, conn: sqlite3.Connection, view: FeatureView) -> dict[str, Any]:
        features = view_features(view)
        table = _table(view.name)
        known = self._columns.get(view.name)
        if known is not None and known.issuperset(features):
            return features
        columns = ", ".join(
            f"{_quote(name)} {_AFFINITY.get(dtype.name, '')}" for name, dtype in features.items()
        )
        try:
            conn.execute(
                f"CREATE TABLE IF NOT EXISTS {table} (_entity_key TEXT PRIMARY KEY, "
                f"_event_ts INTEGER NOT NULL, _created_ts INTEGER NOT NULL"
                f"{', ' + columns if columns else ''}) WITHOUT ROWID"
            )
            have = {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
            for name, dtype in features.items():
                if name not in have:
                    affinity = _AFFINITY.get(dtype.name, "")
                    try:
                        conn.execute(f"ALTER TABLE {table} ADD COLUMN {_quote(name)} {affinity}")
                    except sqlite3.OperationalError as exc:
                        if "duplicate column" not in str(exc):
                            raise
                    have.add(name)
        except sqlite3.Error as exc:
            raise BackendError(f"{self!r} cannot prepare view '{view.name}': {exc}") from exc
        self._columns[view.name] = have
        return features

    # -- rows -----------------------------------------------------------------------------

    def write(self, view: FeatureView, table: pa.Table) -> int:
        """Upsert the rows of ``table``; an older row never replaces a newer one."""
        batch = prepare_write(view, table)
        if not len(batch):
            return 0
        conn = self._conn()
        self._ensure_table(conn, view)
        name = _table(view.name)
        columns = ["_entity_key", "_event_ts", "_created_ts", *batch.features]
        quoted = [_quote(c) for c in columns]
        updates = ", ".join(f"{c} = excluded.{c}" for c in quoted[1:])
        sql = (
            f"INSERT INTO {name} ({', '.join(quoted)}) VALUES ({', '.join('?' * len(columns))}) "
            f"ON CONFLICT(_entity_key) DO UPDATE SET {updates} "
            f"WHERE excluded._event_ts > {name}._event_ts OR "
            f"(excluded._event_ts = {name}._event_ts "
            f"AND excluded._created_ts >= {name}._created_ts)"
        )
        rows = zip(
            batch.keys, batch.event_us, batch.created_us, *batch.features.values(), strict=True
        )
        try:
            before = conn.total_changes
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.executemany(sql, rows)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            raise BackendError(f"{self!r} failed writing view '{view.name}': {exc}") from exc
        return conn.total_changes - before

    def read(
        self,
        view: FeatureView,
        feature_names: Sequence[str],
        entity_keys: Sequence[tuple[Any, ...]],
        *,
        now: datetime | None = None,
    ) -> ReadResult:
        """Values, statuses and event times of ``feature_names`` for ``entity_keys``."""
        keys = entity_keys_of(view, entity_keys)
        conn = self._conn()
        require_features(view, feature_names)
        features = self._ensure_table(conn, view)
        selected = ", ".join(_quote(f) for f in ("_entity_key", "_event_ts", *feature_names))
        sql = (
            f"SELECT {selected} FROM {_table(view.name)} "
            "WHERE _entity_key IN (SELECT value FROM json_each(?))"
        )
        try:
            found = {row[0]: row for row in conn.execute(sql, (json.dumps(keys),))}
        except sqlite3.Error as exc:
            raise BackendError(f"{self!r} failed reading view '{view.name}': {exc}") from exc
        converters = [decoder(features[f]) for f in feature_names]
        return read_result(view, feature_names, [found.get(k) for k in keys], now, converters)

    # -- watermarks -----------------------------------------------------------------------

    def get_watermark(self, view_name: str) -> datetime | None:
        row = (
            self._conn()
            .execute(f"SELECT ts FROM {_WATERMARKS} WHERE view = ?", (view_name,))
            .fetchone()
        )
        return None if row is None else from_micros(row[0])

    def set_watermark(self, view_name: str, ts: datetime) -> None:
        self._conn().execute(
            f"INSERT INTO {_WATERMARKS} (view, ts) VALUES (?, ?) "
            "ON CONFLICT(view) DO UPDATE SET ts = excluded.ts",
            (view_name, to_micros(ts)),
        )

    def delete_view(self, view_name: str) -> None:
        conn = self._conn()
        conn.execute(f"DROP TABLE IF EXISTS {_table(view_name)}")
        conn.execute(f"DELETE FROM {_WATERMARKS} WHERE view = ?", (view_name,))
        self._columns.pop(view_name, None)
