"""Roles, the permission table and the authorization decision; pure, no I/O.

A permission is a (resource type, action) pair, written ``models:write``. A principal holds
roles site-wide and per workspace; per-resource grants (looked up through a
:class:`GrantLookup`) add a role on one named resource. Grants only add permissions.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from shipyard.errors import InvalidArgumentError, PermissionDeniedError, did_you_mean
from shipyard.security.entities import Principal

ADMIN = "admin"
MAINTAINER = "maintainer"
DATA_SCIENTIST = "data-scientist"
VIEWER = "viewer"
PREDICTOR = "predictor"
ROLES = (ADMIN, MAINTAINER, DATA_SCIENTIST, VIEWER, PREDICTOR)

#: Every resource type and the actions that exist on it.
RESOURCE_ACTIONS: dict[str, tuple[str, ...]] = {
    "experiments": ("read", "write", "delete", "admin"),
    "runs": ("read", "write", "delete", "admin"),
    "models": ("read", "write", "delete", "admin"),
    "aliases": ("read", "write", "delete", "admin"),
    "promotions": ("read", "write", "admin"),
    "features": ("read", "write", "delete", "admin"),
    "pipelines": ("read", "write", "delete", "run", "admin"),
    "deployments": ("read", "write", "delete", "admin"),
    "predictions": ("read", "invoke", "admin"),
    "users": ("read", "write", "admin"),
    "audit": ("read", "admin"),
    "workspaces": ("read", "write", "admin"),
}
RESOURCE_TYPES = tuple(RESOURCE_ACTIONS)

Permission = tuple[str, str]

_ML_RESOURCES = (
    "experiments",
    "runs",
    "models",
    "aliases",
    "promotions",
    "features",
    "pipelines",
    "deployments",
    "predictions",
)


def _all(*types: str) -> set[Permission]:
    return {(t, a) for t in types for a in RESOURCE_ACTIONS[t]}


def _only(action: str, *types: str) -> set[Permission]:
    return {(t, action) for t in types}


#: What each role may do. ``admin`` may do everything; the others are listed in full.
ROLE_PERMISSIONS: dict[str, frozenset[Permission]] = {
    ADMIN: frozenset(_all(*RESOURCE_TYPES)),
    MAINTAINER: frozenset(_all(*_ML_RESOURCES) | _only("read", "users", "audit", "workspaces")),
    DATA_SCIENTIST: frozenset(
        _all("experiments", "runs") - _only("admin", "experiments", "runs")
        | _only("read", "models", "aliases", "promotions", "deployments", "workspaces")
        | _only("write", "models", "aliases", "features", "pipelines")
        | _only("read", "features", "pipelines", "predictions")
        | {("pipelines", "run"), ("predictions", "invoke")}
    ),
    VIEWER: frozenset(
        _only("read", *(t for t in _ML_RESOURCES if t != "predictions"), "workspaces")
    ),
    PREDICTOR: frozenset({("predictions", "invoke"), ("models", "read"), ("aliases", "read")}),
}

#: Which resource types a grant on a resource covers: a grant on experiment X also covers
#: its runs (authorize runs with the experiment's name), one on model M covers M's aliases,
#: promotions and predictions.
GRANT_COVERS: dict[str, tuple[str, ...]] = {
    "experiments": ("experiments", "runs"),
    "models": ("models", "aliases", "promotions", "predictions"),
    "features": ("features",),
    "pipelines": ("pipelines",),
    "deployments": ("deployments",),
}

#: For a requested resource type, the grant types that may cover it.
GRANT_TYPES_FOR: dict[str, tuple[str, ...]] = {
    rtype: tuple(g for g, covered in GRANT_COVERS.items() if rtype in covered)
    for rtype in RESOURCE_TYPES
}


class GrantLookup(Protocol):
    """Where :func:`authorize` finds per-resource grants (SqlGrantLookup in production)."""

    def roles_on(
        self, principal: Principal, workspace: str, resource_type: str, resource_name: str
    ) -> frozenset[str]: ...


def check_role(role: str) -> str:
    """Return ``role`` if it exists, else raise InvalidArgumentError listing the roles."""
    if role not in ROLE_PERMISSIONS:
        raise InvalidArgumentError(
            f"Unknown role {role!r}. Roles: {', '.join(ROLES)}.{did_you_mean(role, ROLES)}"
        )
    return role


def check_permission(resource_type: str, action: str) -> Permission:
    """Return (resource_type, action) if that permission exists, else raise ValueError.

    The server calls this when a route declares its permission, so a typo fails at startup.
    """
    actions = RESOURCE_ACTIONS.get(resource_type)
    if actions is None:
        raise ValueError(
            f"Unknown resource type {resource_type!r}. Known: {', '.join(RESOURCE_TYPES)}."
            f"{did_you_mean(resource_type, RESOURCE_TYPES)}"
        )
    if action not in actions:
        raise ValueError(
            f"Unknown action {action!r} on {resource_type}. Known: {', '.join(actions)}."
            f"{did_you_mean(action, actions)}"
        )
    return (resource_type, action)


def has_permission(role: str, resource_type: str, action: str) -> bool:
    """True when ``role`` grants ``resource_type:action``."""
    return (resource_type, action) in ROLE_PERMISSIONS.get(role, frozenset())


def roles_with(resource_type: str, action: str) -> list[str]:
    """The roles that grant ``resource_type:action``, in ROLES order."""
    return [r for r in ROLES if (resource_type, action) in ROLE_PERMISSIONS[r]]


def scope_allows(scopes: Iterable[str], resource_type: str, action: str) -> bool:
    """True when one of ``scopes`` (``models:read``, ``models:*``, ``*:read``, ``*``) matches."""
    for scope in scopes:
        if scope == "*":
            return True
        stype, _, sact = scope.partition(":")
        if stype in (resource_type, "*") and sact in (action, "*"):
            return True
    return False


def authorize(
    principal: Principal,
    workspace: str,
    resource_type: str,
    action: str,
    resource_name: str | None = None,
    *,
    grants: GrantLookup | None = None,
) -> None:
    """Allow, or raise PermissionDeniedError naming the missing permission.

    Args:
        principal: The authenticated caller.
        workspace: The workspace the request acts in.
        resource_type: One of :data:`RESOURCE_TYPES`.
        action: An action of that type (see :data:`RESOURCE_ACTIONS`).
        resource_name: The named resource, when there is one; lets a per-resource grant
            allow what the principal's roles do not. For runs pass the experiment name,
            for aliases, promotions and predictions the model name.
        grants: Where per-resource grants are looked up; None ignores grants.

    Raises:
        ValueError: The permission does not exist (a programming error).
        PermissionDeniedError: The principal may not do this.
    """
    perm = check_permission(resource_type, action)
    name = f"{resource_type}:{action}"
    if principal.scopes is not None and not scope_allows(principal.scopes, *perm):
        raise PermissionDeniedError(
            f"{principal.id} may not {action} {resource_type}: the API key's scopes "
            f"({', '.join(sorted(principal.scopes)) or 'none'}) do not include '{name}'.",
            hint=f"Create a key with the scope '{name}'.",
        )
    roles = principal.roles_in(workspace)
    for role in roles:
        if perm in ROLE_PERMISSIONS.get(role, frozenset()):
            return
    granted: frozenset[str] = frozenset()
    if resource_name is not None and grants is not None and GRANT_TYPES_FOR[resource_type]:
        granted = grants.roles_on(principal, workspace, resource_type, resource_name)
        for role in granted:
            if perm in ROLE_PERMISSIONS.get(role, frozenset()):
                return
    hint = f"Ask an admin of workspace '{workspace}' for a role with '{name}' " + (
        f"({', '.join(roles_with(resource_type, action))})."
    )
    if not roles and not granted:
        raise PermissionDeniedError(
            f"{principal.id} is not a member of workspace '{workspace}'; "
            f"missing permission '{name}'.",
            hint=hint,
        )
    held = list(dict.fromkeys((*roles, *sorted(granted))))
    which = f"role '{held[0]}' lacks" if len(held) == 1 else f"roles {held} lack"
    target = f" {resource_name!r}" if resource_name is not None else ""
    raise PermissionDeniedError(
        f"{principal.id} may not {action} {resource_type}{target} in workspace "
        f"'{workspace}': {which} permission '{name}'.",
        hint=hint,
    )
