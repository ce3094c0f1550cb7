"""Small database helpers shared by the security modules: locks, upserts, hashing."""

from __future__ import annotations

import hashlib
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection


def sha256_hex(value: str | bytes) -> str:
    data = value.encode("utf-8", "surrogatepass") if isinstance(value, str) else value
    return hashlib.sha256(data).hexdigest()


def _lock_key(name: str) -> int:
    # A stable signed 64-bit key per lock name, as pg_advisory_xact_lock wants.
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


def serialize(conn: Connection, name: str) -> None:
    """Hold a lock named ``name`` until the transaction ends.

    SQLite transactions already start with BEGIN IMMEDIATE (see shipyard.store.db), which
    serializes every writer; PostgreSQL takes a transaction-scoped advisory lock.
    """
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _lock_key(name)})


def upsert(
    conn: Connection,
    table: sa.Table,
    values: dict[str, Any],
    keys: list[str],
    update: dict[str, Any],
) -> None:
    """INSERT ``values``, or on a conflict on ``keys`` UPDATE with ``update`` (SQL expressions
    in ``update`` see the existing row)."""
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    stmt = insert(table).values(**values)
    conn.execute(stmt.on_conflict_do_update(index_elements=keys, set_=update))
