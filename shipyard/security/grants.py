"""Per-resource grants: a role on one named experiment, model, feature set, pipeline or
deployment, held by a user, a service account or a team.

Grants only add permissions (see :data:`shipyard.security.rbac.GRANT_COVERS` for what a
grant on each resource type covers). :class:`SqlGrantLookup` answers
:func:`~shipyard.security.rbac.authorize` with a short-lived cache.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from shipyard.errors import InvalidArgumentError, NotFoundError, did_you_mean
from shipyard.security._db import upsert
from shipyard.security.entities import TEAM, Principal, ResourceGrant
from shipyard.security.members import check_member_type
from shipyard.security.rbac import GRANT_COVERS, GRANT_TYPES_FOR, check_role
from shipyard.security.schema import resource_grants
from shipyard.security.users import check_principal_name
from shipyard.store.db import now_ms
from shipyard.store.workspaces import require_workspace


def _grant(row: Any) -> ResourceGrant:
    return ResourceGrant(
        row.id,
        row.workspace,
        row.resource_type,
        row.resource_name,
        row.principal_type,
        row.principal_name,
        row.role,
        row.created_at,
    )


def _check_grant_type(resource_type: str) -> None:
    if resource_type not in GRANT_COVERS:
        raise InvalidArgumentError(
            f"Resources of type {resource_type!r} cannot be granted. Grantable: "
            f"{', '.join(GRANT_COVERS)}.{did_you_mean(resource_type, GRANT_COVERS)}"
        )


def grant_role(
    engine: Engine,
    workspace: str,
    resource_type: str,
    resource_name: str,
    principal_type: str,
    principal_name: str,
    role: str,
) -> ResourceGrant:
    """Give ``role`` on one resource to a principal or team, replacing an earlier grant."""
    _check_grant_type(resource_type)
    check_member_type(principal_type)
    check_principal_name(principal_name, principal_type.replace("_", " "))
    check_role(role)
    require_workspace(engine, workspace)
    g = resource_grants.c
    where = (
        g.workspace == workspace,
        g.resource_type == resource_type,
        g.resource_name == resource_name,
        g.principal_type == principal_type,
        g.principal_name == principal_name,
    )
    with engine.begin() as conn:
        upsert(
            conn,
            resource_grants,
            {
                "workspace": workspace,
                "resource_type": resource_type,
                "resource_name": resource_name,
                "principal_type": principal_type,
                "principal_name": principal_name,
                "role": role,
                "created_at": now_ms(),
            },
            ["workspace", "resource_type", "resource_name", "principal_type", "principal_name"],
            {"role": role},
        )
        row = conn.execute(sa.select(resource_grants).where(*where)).one()
    return _grant(row)


def revoke_grant(
    engine: Engine,
    workspace: str,
    resource_type: str,
    resource_name: str,
    principal_type: str,
    principal_name: str,
) -> None:
    """Remove a grant; NotFoundError if there was none."""
    g = resource_grants.c
    with engine.begin() as conn:
        result = conn.execute(
            resource_grants.delete().where(
                g.workspace == workspace,
                g.resource_type == resource_type,
                g.resource_name == resource_name,
                g.principal_type == principal_type,
                g.principal_name == principal_name,
            )
        )
    if result.rowcount == 0:
        raise NotFoundError(
            f"No grant on {resource_type} '{resource_name}' for {principal_type} "
            f"'{principal_name}' in workspace '{workspace}'."
        )


def list_grants(
    engine: Engine,
    workspace: str,
    resource_type: str | None = None,
    resource_name: str | None = None,
) -> list[ResourceGrant]:
    g = resource_grants.c
    query = sa.select(resource_grants).where(g.workspace == workspace)
    if resource_type is not None:
        query = query.where(g.resource_type == resource_type)
    if resource_name is not None:
        query = query.where(g.resource_name == resource_name)
    with engine.connect() as conn:
        rows = conn.execute(query.order_by(g.resource_type, g.resource_name, g.id))
        return [_grant(r) for r in rows]


class SqlGrantLookup:
    """Looks grants up in the metadata DB for :func:`~shipyard.security.rbac.authorize`.

    Answers are cached for ``ttl`` seconds per (principal, workspace, resource); changes
    made in another process show up within that time, :meth:`invalidate` clears it here.
    """

    def __init__(self, engine: Engine, ttl: float = 5.0) -> None:
        self._engine = engine
        self._ttl = ttl
        self._cache: dict[tuple[Any, ...], tuple[float, frozenset[str]]] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"SqlGrantLookup({self._engine.url.render_as_string(hide_password=True)!r})"

    def invalidate(self) -> None:
        with self._lock:
            self._cache.clear()

    def roles_on(
        self, principal: Principal, workspace: str, resource_type: str, resource_name: str
    ) -> frozenset[str]:
        """Roles granted to the principal or its teams on this resource."""
        grant_types = GRANT_TYPES_FOR.get(resource_type, ())
        if not grant_types:
            return frozenset()
        key = (
            principal.kind,
            principal.name,
            principal.teams,
            workspace,
            grant_types,
            resource_name,
        )
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(key)
        if hit is not None and now - hit[0] < self._ttl:
            return hit[1]
        g = resource_grants.c
        who = sa.and_(g.principal_type == principal.kind, g.principal_name == principal.name)
        if principal.teams:
            who = sa.or_(
                who, sa.and_(g.principal_type == TEAM, g.principal_name.in_(principal.teams))
            )
        query = sa.select(g.role).where(
            g.workspace == workspace,
            g.resource_type.in_(grant_types),
            g.resource_name == resource_name,
            who,
        )
        with self._engine.connect() as conn:
            roles = frozenset(conn.execute(query).scalars())
        with self._lock:
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[key] = (now, roles)
        return roles
