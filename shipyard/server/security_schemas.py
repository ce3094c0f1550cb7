"""Wire format of the security routes: tokens, identities, API keys, memberships, grants
and the audit log.

Times of identities are ISO 8601 UTC like the rest of the API; audit records keep their
epoch-millisecond ``at``, because their hash is computed over it. Secrets (client
secrets, API keys) appear in a response once, when they are created.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, StringConstraints

from shipyard.server.schemas import _NO_NUL, _Request, _Response

__all__ = [
    "ApiKeyCreate",
    "ApiKeyList",
    "ApiKeyOut",
    "AuditIssueOut",
    "AuditList",
    "AuditRecordOut",
    "AuditVerifyOut",
    "GrantCreate",
    "GrantList",
    "GrantOut",
    "GrantRef",
    "JwksOut",
    "LogoutBody",
    "MeOut",
    "MemberList",
    "MemberSet",
    "MembershipOut",
    "RotateKey",
    "RotatedKey",
    "ServiceAccountCreate",
    "ServiceAccountList",
    "ServiceAccountOut",
    "ServiceAccountUpdate",
    "TokenOut",
    "UserCreate",
    "UserList",
    "UserOut",
    "UserUpdate",
    "WorkspaceCreate",
    "WorkspaceList",
    "WorkspaceOut",
]


# Limits both enforced and stated in OpenAPI.
PrincipalName = Annotated[str, StringConstraints(min_length=1, max_length=128), _NO_NUL]
#: ``user:alice``, ``sa:ci-bot`` or (memberships and grants) ``team:ml``.
PrincipalRef = Annotated[
    str, StringConstraints(min_length=3, max_length=140, pattern=r"^(user|sa|team):.+$"), _NO_NUL
]
Role = Annotated[str, StringConstraints(min_length=1, max_length=32), _NO_NUL]
Password = Annotated[str, StringConstraints(min_length=1, max_length=1024), _NO_NUL]
Secret = Annotated[str, StringConstraints(max_length=4096), _NO_NUL]
Short = Annotated[str, StringConstraints(max_length=256), _NO_NUL]
Scope = Annotated[
    str,
    StringConstraints(min_length=1, max_length=64, pattern=r"^([a-z*][a-z_*-]*:[a-z*]+|\*)$"),
    _NO_NUL,
]
WorkspaceName = Annotated[
    str,
    StringConstraints(min_length=1, max_length=64, pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$"),
    _NO_NUL,
]


# -- tokens ---------------------------------------------------------------------------------


class TokenOut(BaseModel):
    """An OAuth2 token response (RFC 6749 section 5.1)."""

    access_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int
    refresh_token: str | None = None
    scope: str | None = None


class LogoutBody(_Request):
    refresh_token: Secret


class JwksOut(BaseModel):
    """Public keys that verify access tokens (RFC 7517); empty for HS256."""

    keys: list[dict[str, Any]]


class MeOut(BaseModel):
    id: str = Field(description="'user:<name>' or 'sa:<name>' ('anonymous' with auth off)")
    name: str
    kind: str = Field(description="'user', 'service_account' or 'anonymous'")
    role: str | None = Field(None, description="Site-wide role: holds in every workspace")
    roles: dict[str, list[str]] = Field(description="Roles per workspace")
    teams: list[str] = []
    auth: str = Field(description="How the request authenticated: jwt, api_key or off")
    scopes: list[str] | None = None


class RotateKey(_Request):
    grace: float | None = Field(
        None, ge=0, le=30 * 86400, description="Seconds older keys keep verifying"
    )


class RotatedKey(BaseModel):
    kid: str


# -- users and service accounts -------------------------------------------------------------


class UserCreate(_Request):
    name: PrincipalName
    password: Password
    role: Role | None = None


class UserUpdate(_Request):
    """Only the fields sent change; ``"role": null`` removes the site-wide role."""

    disabled: bool | None = None
    role: Role | None = None
    password: Password | None = None


class UserOut(_Response):
    name: str
    role: str | None
    disabled: bool
    created_at: datetime
    updated_at: datetime


class UserList(_Response):
    users: list[UserOut]


class ServiceAccountCreate(_Request):
    name: PrincipalName
    role: Role | None = None
    description: Short = ""


class ServiceAccountUpdate(_Request):
    """Only the fields sent change; ``rotate_secret`` returns a new client secret once."""

    disabled: bool | None = None
    role: Role | None = None
    rotate_secret: bool = False


class ServiceAccountOut(_Response):
    name: str
    client_id: str
    role: str | None
    description: str
    disabled: bool
    created_at: datetime
    updated_at: datetime
    client_secret: str | None = Field(
        None, description="Only when created or rotated: store it now, it is not shown again"
    )


class ServiceAccountList(_Response):
    service_accounts: list[ServiceAccountOut]


# -- API keys -------------------------------------------------------------------------------


class ApiKeyCreate(_Request):
    name: Short = ""
    scopes: list[Scope] | None = Field(
        None, max_length=64, description="e.g. ['models:read']; none = the owner's permissions"
    )
    expires_in: float | None = Field(None, gt=0, le=10 * 365 * 86400, description="Seconds")
    principal: PrincipalRef | None = Field(
        None, description="Owner ('user:x' or 'sa:y'); default the caller (admins only)"
    )


class ApiKeyOut(_Response):
    key_id: str
    principal: str
    name: str
    scopes: list[str] | None
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None
    key: str | None = Field(None, description="Only when created: the key itself, shown once")


class ApiKeyList(_Response):
    api_keys: list[ApiKeyOut]


# -- workspaces, members, grants ------------------------------------------------------------


class WorkspaceCreate(_Request):
    name: WorkspaceName
    description: Short = ""


class WorkspaceOut(BaseModel):
    name: str
    roles: list[str] = Field(description="The caller's roles there")


class WorkspaceList(BaseModel):
    workspaces: list[WorkspaceOut]


class MemberSet(_Request):
    role: Role


class MembershipOut(BaseModel):
    workspace: str
    principal: str
    role: str


class MemberList(BaseModel):
    members: list[MembershipOut]


class GrantCreate(_Request):
    resource_type: Short
    resource_name: Short
    principal: PrincipalRef
    role: Role
    workspace: WorkspaceName | None = Field(
        None, description="Must match the request's workspace when given"
    )


class GrantRef(_Request):
    """Which grant to revoke."""

    resource_type: Short
    resource_name: Short
    principal: PrincipalRef


class GrantOut(BaseModel):
    id: int
    workspace: str
    resource_type: str
    resource_name: str
    principal: str
    role: str
    created_at: datetime


class GrantList(BaseModel):
    grants: list[GrantOut]


# -- audit ----------------------------------------------------------------------------------


class AuditRecordOut(BaseModel):
    seq: int
    at: int = Field(description="Epoch milliseconds")
    actor: str
    action: str
    resource_type: str
    resource_id: str
    workspace: str
    details: dict[str, Any]
    prev_hash: str
    hash: str


class AuditList(BaseModel):
    records: list[AuditRecordOut]


class AuditIssueOut(BaseModel):
    seq: int
    kind: str
    message: str


class AuditVerifyOut(BaseModel):
    ok: bool
    checked: int
    issues: list[AuditIssueOut]
    head_seq: int
    head_hash: str
