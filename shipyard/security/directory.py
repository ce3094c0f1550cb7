"""The current state of a principal (disabled?, roles, teams), read from the metadata DB
with a short cache so that checking every request stays cheap.

A change made through this process invalidates the entry at once; one made by another
worker is seen after at most ``ttl`` seconds.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from shipyard.security.entities import SERVICE_ACCOUNT, TEAM, USER, Principal
from shipyard.security.schema import service_accounts, team_members, users, workspace_members


@dataclass(frozen=True)
class PrincipalState:
    """A principal as stored: identity, status and roles."""

    kind: str
    name: str
    role: str | None
    disabled: bool
    tokens_valid_after: int  # epoch seconds; tokens issued earlier are void
    workspace_roles: dict[str, tuple[str, ...]]
    teams: frozenset[str]

    def principal(
        self, *, auth: str, token_id: str | None = None, scopes: frozenset[str] | None = None
    ) -> Principal:
        return Principal(
            kind=self.kind,
            name=self.name,
            role=self.role,
            workspace_roles=self.workspace_roles,
            teams=self.teams,
            scopes=scopes,
            auth=auth,
            token_id=token_id,
        )


class PrincipalDirectory:
    """Cached lookups of :class:`PrincipalState` by (kind, name)."""

    def __init__(self, engine: Engine, ttl: float = 5.0) -> None:
        self._engine = engine
        self._ttl = ttl
        self._cache: dict[tuple[str, str], tuple[float, PrincipalState | None]] = {}
        self._lock = threading.Lock()

    def invalidate(self, kind: str | None = None, name: str | None = None) -> None:
        """Forget one principal, or everyone when called without arguments."""
        with self._lock:
            if kind is None or name is None:
                self._cache.clear()
            else:
                self._cache.pop((kind, name), None)

    def get(self, kind: str, name: str) -> PrincipalState | None:
        """The principal's state, or None if it does not exist."""
        key = (kind, name)
        now = time.monotonic()
        hit = self._cache.get(key)
        if hit is not None and now - hit[0] < self._ttl:
            return hit[1]
        state = self._load(kind, name)
        with self._lock:
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[key] = (now, state)
        return state

    def _load(self, kind: str, name: str) -> PrincipalState | None:
        table = {USER: users, SERVICE_ACCOUNT: service_accounts}.get(kind)
        if table is None:
            return None
        t, m = team_members.c, workspace_members.c
        with self._engine.connect() as conn:
            row = conn.execute(
                sa.select(table.c.role, table.c.disabled, table.c.tokens_valid_after).where(
                    table.c.name == name
                )
            ).first()
            if row is None:
                return None
            teams = frozenset(
                conn.execute(
                    sa.select(t.team).where(t.principal_type == kind, t.principal_name == name)
                ).scalars()
            )
            who = sa.and_(m.principal_type == kind, m.principal_name == name)
            if teams:
                who = sa.or_(who, sa.and_(m.principal_type == TEAM, m.principal_name.in_(teams)))
            memberships = conn.execute(
                sa.select(m.workspace, m.role).where(who).order_by(m.workspace, m.principal_type)
            ).all()
        roles: dict[str, list[str]] = defaultdict(list)
        for workspace, role in memberships:
            if role not in roles[workspace]:
                roles[workspace].append(role)
        return PrincipalState(
            kind=kind,
            name=name,
            role=row.role,
            disabled=bool(row.disabled),
            tokens_valid_after=int(row.tokens_valid_after),
            workspace_roles={ws: tuple(r) for ws, r in roles.items()},
            teams=teams,
        )
