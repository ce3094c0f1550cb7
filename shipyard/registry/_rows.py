"""Rows to registry entities for SqlRegistryStore, plus small SQL helpers it shares.

Entities for a batch of rows are built with one query per child table, never per row.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from shipyard.errors import InvalidArgumentError
from shipyard.registry.entities import AliasChange, ModelVersion, RegisteredModel, Webhook
from shipyard.registry.schema import (
    model_aliases,
    model_gates,
    model_tags,
    model_version_tags,
    model_versions,
)

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Row

#: Status of a deleted version: the row stays so its number is never handed out again.
DELETED = "DELETED"
READY = "READY"

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def ms_to_dt(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def dt_to_ms(at: datetime) -> int:
    """Exact epoch milliseconds (floored) of ``at``; a naive datetime is taken as UTC."""
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return (at - _EPOCH) // timedelta(milliseconds=1)


def upsert(conn: Connection, table: sa.Table, keys: list[str], values: dict[str, Any]) -> None:
    """INSERT ... ON CONFLICT (keys) DO UPDATE, on SQLite and PostgreSQL alike."""
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    stmt = insert(table).values(**values)
    update = {k: stmt.excluded[k] for k in values if k not in keys}
    conn.execute(stmt.on_conflict_do_update(index_elements=keys, set_=update))


def _grouped(
    conn: Connection, table: sa.Table, workspace: str, names: list[str], key: str, value: str
) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {n: {} for n in names}
    query = sa.select(table.c.name, table.c[key], table.c[value]).where(
        table.c.workspace == workspace, table.c.name.in_(names)
    )
    for name, k, v in conn.execute(query.order_by(table.c[key])):
        out[name][k] = v
    return out


def registered_models_of(
    conn: Connection, workspace: str, rows: Sequence[Row[Any]]
) -> list[RegisteredModel]:
    """RegisteredModel entities, with tags, aliases, gates and latest version, for rows."""
    names = [r.name for r in rows]
    if not names:
        return []
    tags = _grouped(conn, model_tags, workspace, names, "key", "value")
    aliases = _grouped(conn, model_aliases, workspace, names, "alias", "version")
    gates = _grouped(conn, model_gates, workspace, names, "alias", "expression")
    mv = model_versions.c
    latest = dict(
        conn.execute(
            sa.select(mv.name, sa.func.max(mv.version))
            .where(mv.workspace == workspace, mv.name.in_(names), mv.status != DELETED)
            .group_by(mv.name)
        ).all()
    )
    return [
        RegisteredModel(
            name=r.name,
            workspace=workspace,
            created_at=ms_to_dt(r.created_at),
            updated_at=ms_to_dt(r.updated_at),
            description=r.description,
            latest_version=latest.get(r.name),
            aliases=aliases[r.name],
            gates=gates[r.name],
            tags=tags[r.name],
        )
        for r in rows
    ]


def model_versions_of(
    conn: Connection, workspace: str, name: str, rows: Sequence[Row[Any]]
) -> list[ModelVersion]:
    """ModelVersion entities, with tags and aliases, for rows of one model."""
    numbers = [r.version for r in rows]
    if not numbers:
        return []
    tags: dict[int, dict[str, str]] = {v: {} for v in numbers}
    vt = model_version_tags.c
    for v, key, value in conn.execute(
        sa.select(vt.version, vt.key, vt.value)
        .where(vt.workspace == workspace, vt.name == name, vt.version.in_(numbers))
        .order_by(vt.key)
    ):
        tags[v][key] = value
    aliases: dict[int, list[str]] = {v: [] for v in numbers}
    ma = model_aliases.c
    for v, alias in conn.execute(
        sa.select(ma.version, ma.alias)
        .where(ma.workspace == workspace, ma.name == name, ma.version.in_(numbers))
        .order_by(ma.alias)
    ):
        aliases[v].append(alias)
    return [
        ModelVersion(
            name=r.name,
            version=r.version,
            workspace=workspace,
            source=r.source,
            run_id=r.run_id,
            status=r.status,
            created_at=ms_to_dt(r.created_at),
            updated_at=ms_to_dt(r.updated_at),
            description=r.description,
            flavor=r.flavor,
            manifest_sha256=r.manifest_sha256,
            aliases=aliases[r.version],
            tags=tags[r.version],
        )
        for r in rows
    ]


def alias_change_of(r: Row[Any]) -> AliasChange:
    return AliasChange(
        name=r.name,
        alias=r.alias,
        from_version=r.from_version,
        to_version=r.to_version,
        actor=r.actor,
        at=ms_to_dt(r.at),
        reason=r.reason,
    )


def webhook_of(r: Row[Any]) -> Webhook:
    return Webhook(r.webhook_id, r.workspace, r.url, r.events.split(","), ms_to_dt(r.created_at))


def encode_page_token(after: str) -> str:
    return base64.urlsafe_b64encode(json.dumps({"after": after}).encode()).decode()


def decode_page_token(token: str | None) -> str | None:
    """The name a page starts after, from a token made by :func:`encode_page_token`."""
    if not token:
        return None
    try:
        after = json.loads(base64.urlsafe_b64decode(token.encode()))["after"]
        if isinstance(after, str):
            return after
    except (ValueError, KeyError, TypeError):
        pass
    raise InvalidArgumentError(
        f"Invalid page token {token!r}.",
        hint="Pass the next_page_token of a previous page unchanged.",
    )
