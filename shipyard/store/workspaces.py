"""Workspaces: every experiment, run, model and artifact belongs to exactly one."""

from __future__ import annotations

import re

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from shipyard.errors import ConflictError, InvalidArgumentError, NotFoundError
from shipyard.store.db import now_ms
from shipyard.store.schema import workspaces

_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


def check_workspace_name(name: str) -> str:
    """Return ``name`` if it is a valid workspace name, else raise InvalidArgumentError."""
    if not _NAME.match(name or ""):
        raise InvalidArgumentError(
            f"Invalid workspace name {name!r}.",
            hint="Use 1-64 lowercase letters, digits, '-' or '_', starting with a letter or digit.",
        )
    return name


def create_workspace(engine: Engine, name: str, description: str = "") -> None:
    """Create a workspace; ConflictError if it exists."""
    check_workspace_name(name)
    with engine.begin() as conn:
        if conn.execute(sa.select(workspaces.c.name).where(workspaces.c.name == name)).first():
            raise ConflictError(f"Workspace '{name}' already exists.")
        conn.execute(
            workspaces.insert().values(name=name, description=description, created_at=now_ms())
        )


def ensure_workspace(engine: Engine, name: str) -> None:
    """Create the workspace if it does not exist yet."""
    check_workspace_name(name)
    with engine.begin() as conn:
        exists = conn.execute(sa.select(workspaces.c.name).where(workspaces.c.name == name))
        if exists.first() is None:
            conn.execute(workspaces.insert().values(name=name, created_at=now_ms()))


def list_workspaces(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        return list(
            conn.execute(sa.select(workspaces.c.name).order_by(workspaces.c.name)).scalars()
        )


def require_workspace(engine: Engine, name: str) -> None:
    """Raise NotFoundError when the workspace does not exist."""
    with engine.connect() as conn:
        found = conn.execute(sa.select(workspaces.c.name).where(workspaces.c.name == name)).first()
    if found is None:
        raise NotFoundError(
            f"Workspace '{name}' does not exist.",
            hint=f"Create it with `shipyard workspaces create {name}`.",
        )
