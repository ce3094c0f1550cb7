"""Security entities: who is calling (Principal), stored identities, grants, keys and tokens.

All frozen dataclasses; the SQL functions return these, never rows.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from shipyard.errors import InvalidArgumentError

USER = "user"
SERVICE_ACCOUNT = "service_account"
TEAM = "team"
PRINCIPAL_KINDS = (USER, SERVICE_ACCOUNT)

# The short prefix of a principal id ("user:alice", "sa:ci-bot"), used as JWT ``sub`` and
# as the audit actor.
_ID_PREFIX = {USER: "user", SERVICE_ACCOUNT: "sa"}
_KIND_OF_PREFIX = {v: k for k, v in _ID_PREFIX.items()}


def principal_id(kind: str, name: str) -> str:
    """The id of a principal, e.g. ``user:alice`` or ``sa:ci-bot``."""
    return f"{_ID_PREFIX[kind]}:{name}"


def parse_principal_id(value: str) -> tuple[str, str]:
    """Split ``user:alice`` / ``sa:ci-bot`` into (kind, name)."""
    prefix, sep, name = value.partition(":")
    if not sep or not name or prefix not in _KIND_OF_PREFIX:
        raise InvalidArgumentError(
            f"Invalid principal {value!r}.",
            hint="Write users as 'user:<name>' and service accounts as 'sa:<name>'.",
        )
    return _KIND_OF_PREFIX[prefix], name


@dataclass(frozen=True)
class Principal:
    """An authenticated caller and everything authorization needs to know about it.

    Attributes:
        kind: ``user`` or ``service_account``.
        name: The user or service-account name.
        role: The site-wide role (applies in every workspace), or None.
        workspace_roles: Roles per workspace, from memberships (direct or via a team).
        teams: Teams the principal belongs to (per-resource grants can name a team).
        scopes: For API keys created with scopes, the ``resource:action`` patterns the key
            is limited to; None means the owner's full permissions.
        auth: How it authenticated: ``jwt``, ``api_key``, ``password`` or
            ``client_credentials``.
        token_id: The JWT ``jti`` or the API key id.
    """

    kind: str
    name: str
    role: str | None = None
    workspace_roles: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    teams: frozenset[str] = frozenset()
    scopes: frozenset[str] | None = None
    auth: str = ""
    token_id: str | None = None

    @property
    def id(self) -> str:
        return principal_id(self.kind, self.name)

    def roles_in(self, workspace: str) -> tuple[str, ...]:
        """Every role the principal holds in ``workspace`` (site-wide role first)."""
        local = self.workspace_roles.get(workspace, ())
        return (self.role, *local) if self.role else local


@dataclass(frozen=True)
class User:
    name: str
    role: str | None
    disabled: bool
    created_at: int
    updated_at: int


@dataclass(frozen=True)
class ServiceAccount:
    name: str
    role: str | None
    description: str
    disabled: bool
    created_at: int
    updated_at: int


@dataclass(frozen=True)
class Membership:
    """A role in a workspace, held by a user, a service account or a team."""

    workspace: str
    principal_type: str
    principal_name: str
    role: str


@dataclass(frozen=True)
class ResourceGrant:
    """A role on one named resource (an experiment or a model a team owns, ...)."""

    id: int
    workspace: str
    resource_type: str
    resource_name: str
    principal_type: str
    principal_name: str
    role: str
    created_at: int


@dataclass(frozen=True)
class ApiKeyInfo:
    """An API key without its secret (the secret is shown once, at creation)."""

    key_id: str
    principal_type: str
    principal_name: str
    name: str
    scopes: frozenset[str] | None
    created_at: int
    expires_at: int | None
    last_used_at: int | None
    revoked_at: int | None


@dataclass(frozen=True)
class TokenPair:
    """What a login returns: a short-lived access JWT and, for users, a refresh token."""

    access_token: str
    expires_in: int
    refresh_token: str | None = None
    token_type: str = "bearer"

    def to_oauth2(self) -> dict[str, Any]:
        """The body of an OAuth2 token response (RFC 6749 section 5.1)."""
        body: dict[str, Any] = {
            "access_token": self.access_token,
            "token_type": self.token_type,
            "expires_in": self.expires_in,
        }
        if self.refresh_token is not None:
            body["refresh_token"] = self.refresh_token
        return body
