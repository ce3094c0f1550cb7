"""Workspace memberships (a role per workspace) and teams.

A member is a user, a service account or a team; a principal's roles in a workspace are
its own membership plus those of its teams. A principal with no membership, no site-wide
role and no grant in a workspace cannot touch it: workspaces are isolation boundaries.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from shipyard.errors import InvalidArgumentError, NotFoundError
from shipyard.security._db import upsert
from shipyard.security.entities import PRINCIPAL_KINDS, TEAM, Membership
from shipyard.security.rbac import check_role
from shipyard.security.schema import team_members, workspace_members
from shipyard.security.users import check_principal_name
from shipyard.store.db import now_ms
from shipyard.store.workspaces import require_workspace

MEMBER_TYPES = (*PRINCIPAL_KINDS, TEAM)


def check_member_type(principal_type: str, allowed: tuple[str, ...] = MEMBER_TYPES) -> str:
    if principal_type not in allowed:
        raise InvalidArgumentError(
            f"Invalid principal type {principal_type!r}. Use one of: {', '.join(allowed)}."
        )
    return principal_type


def set_workspace_role(
    engine: Engine, workspace: str, principal_type: str, principal_name: str, role: str
) -> Membership:
    """Make the principal (or team) a member of ``workspace`` with ``role``, replacing any
    role it had there.

    Raises:
        NotFoundError: The workspace does not exist.
        InvalidArgumentError: Unknown role, principal type or bad name.
    """
    check_member_type(principal_type)
    check_principal_name(principal_name, principal_type.replace("_", " "))
    check_role(role)
    require_workspace(engine, workspace)
    with engine.begin() as conn:
        upsert(
            conn,
            workspace_members,
            {
                "workspace": workspace,
                "principal_type": principal_type,
                "principal_name": principal_name,
                "role": role,
                "created_at": now_ms(),
            },
            ["workspace", "principal_type", "principal_name"],
            {"role": role},
        )
    return Membership(workspace, principal_type, principal_name, role)


def remove_workspace_member(
    engine: Engine, workspace: str, principal_type: str, principal_name: str
) -> None:
    """Remove a membership; NotFoundError if there was none."""
    with engine.begin() as conn:
        result = conn.execute(
            workspace_members.delete().where(
                workspace_members.c.workspace == workspace,
                workspace_members.c.principal_type == principal_type,
                workspace_members.c.principal_name == principal_name,
            )
        )
    if result.rowcount == 0:
        raise NotFoundError(
            f"{principal_type} '{principal_name}' is not a member of workspace '{workspace}'."
        )


def list_workspace_members(engine: Engine, workspace: str) -> list[Membership]:
    m = workspace_members.c
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(m.workspace, m.principal_type, m.principal_name, m.role)
            .where(m.workspace == workspace)
            .order_by(m.principal_type, m.principal_name)
        )
        return [Membership(*r) for r in rows]


def add_team_member(engine: Engine, team: str, principal_type: str, principal_name: str) -> None:
    """Put a user or service account in ``team`` (teams exist while they have members)."""
    check_principal_name(team, "team")
    check_member_type(principal_type, PRINCIPAL_KINDS)
    check_principal_name(principal_name, principal_type.replace("_", " "))
    with engine.begin() as conn:
        upsert(
            conn,
            team_members,
            {
                "team": team,
                "principal_type": principal_type,
                "principal_name": principal_name,
                "created_at": now_ms(),
            },
            ["team", "principal_type", "principal_name"],
            {"team": team},
        )


def remove_team_member(engine: Engine, team: str, principal_type: str, principal_name: str) -> None:
    with engine.begin() as conn:
        result = conn.execute(
            team_members.delete().where(
                team_members.c.team == team,
                team_members.c.principal_type == principal_type,
                team_members.c.principal_name == principal_name,
            )
        )
    if result.rowcount == 0:
        raise NotFoundError(f"{principal_type} '{principal_name}' is not in team '{team}'.")


def list_team_members(engine: Engine, team: str) -> list[tuple[str, str]]:
    t = team_members.c
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(t.principal_type, t.principal_name)
            .where(t.team == team)
            .order_by(t.principal_type, t.principal_name)
        )
        return [(r[0], r[1]) for r in rows]
