"""Identity routes: users, service accounts, API keys, workspaces, workspace members and
per-resource grants.

Users, service accounts and signing keys are site-wide: only a site-wide role counts for
them, never a role held in one workspace. Members and grants belong to a workspace and are
managed with ``workspaces:admin`` there. Every change is audited by the
:class:`~shipyard.security.SecurityService` with the caller as actor.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from starlette.concurrency import run_in_threadpool

from shipyard.errors import ConflictError, InvalidArgumentError, PermissionDeniedError
from shipyard.security import apikeys, grants, members, users
from shipyard.security.entities import SERVICE_ACCOUNT, TEAM, USER, principal_id
from shipyard.security.rbac import ADMIN
from shipyard.server.deps import (
    PermissionRoute,
    Platform,
    actor_of,
    authenticated,
    authorize_also,
    platform,
    principal_of,
    requires,
    workspace,
)
from shipyard.server.schemas import ERROR_RESPONSES
from shipyard.server.security_schemas import (
    ApiKeyCreate,
    ApiKeyList,
    ApiKeyOut,
    GrantCreate,
    GrantList,
    GrantOut,
    GrantRef,
    MemberList,
    MemberSet,
    MembershipOut,
    ServiceAccountCreate,
    ServiceAccountList,
    ServiceAccountOut,
    ServiceAccountUpdate,
    UserCreate,
    UserList,
    UserOut,
    UserUpdate,
    WorkspaceCreate,
    WorkspaceList,
    WorkspaceOut,
)
from shipyard.tracking.entities import ms_to_datetime

if TYPE_CHECKING:
    from shipyard.security import ApiKeyInfo, ResourceGrant, ServiceAccount, User

__all__ = ["router"]

router = APIRouter(route_class=PermissionRoute, responses=ERROR_RESPONSES, tags=["identities"])

PlatformDep = Annotated[Platform, Depends(platform)]
Workspace = Annotated[str, Depends(workspace)]
PrincipalPath = Annotated[str, Path(max_length=140, description="'user:x', 'sa:y' or 'team:z'")]


def _site(resource: str, action: str) -> list[Any]:
    return [Depends(requires(resource, action, site=True))]


_PREFIXES = {"user": USER, "sa": SERVICE_ACCOUNT, "team": TEAM}
_REF_PREFIX = {USER: "user", SERVICE_ACCOUNT: "sa", TEAM: "team"}


def parse_member(ref: str, *, teams: bool = True) -> tuple[str, str]:
    """``user:alice`` / ``sa:ci`` / ``team:ml`` -> (principal_type, name); a bare name
    (``alice``) is a user."""
    prefix, sep, name = ref.partition(":")
    if not sep and prefix:
        return USER, prefix
    kind = _PREFIXES.get(prefix)
    if not sep or not name or kind is None or (kind == TEAM and not teams):
        accepted = "'user:<name>', 'sa:<name>'" + (" or 'team:<name>'" if teams else "")
        raise InvalidArgumentError(
            f"Invalid principal {ref[:140]!r}.", hint=f"Write it as {accepted}."
        )
    return kind, name


def _ref(kind: str, name: str) -> str:
    return f"{_REF_PREFIX.get(kind, kind)}:{name}"


# -- users ----------------------------------------------------------------------------------


def _user_out(user: User) -> UserOut:
    return UserOut(
        name=user.name,
        role=user.role,
        disabled=user.disabled,
        created_at=ms_to_datetime(user.created_at),  # type: ignore[arg-type]
        updated_at=ms_to_datetime(user.updated_at),  # type: ignore[arg-type]
    )


def _check_not_last_admin(state: Platform, name: str) -> None:
    """Refuse to disable or demote the last enabled admin: nobody could undo it."""
    admins = [u for u in users.list_users(state.engine) if u.role == ADMIN and not u.disabled]
    if [u.name for u in admins] == [name]:
        raise ConflictError(
            f"User '{name}' is the last enabled admin; disabling or demoting it would lock "
            "every admin out.",
            hint="Make another user admin first.",
        )


@router.post(
    "/users", status_code=201, response_model=UserOut, dependencies=_site("users", "write")
)
def create_user(body: UserCreate, request: Request, state: PlatformDep) -> Any:
    """Create a user; giving it a site-wide ``role`` needs ``users:admin``."""
    if body.role is not None:
        authorize_also(request, "users", "admin", site=True)
    user = state.security.create_user(
        body.name, body.password, role=body.role, actor=actor_of(request)
    )
    return _user_out(user)


@router.get("/users", response_model=UserList, dependencies=_site("users", "read"))
def list_users(state: PlatformDep) -> Any:
    return {"users": [_user_out(u) for u in users.list_users(state.engine)]}


@router.get("/users/{name}", response_model=UserOut, dependencies=_site("users", "read"))
def get_user(name: str, state: PlatformDep) -> Any:
    return _user_out(users.get_user(state.engine, name))


@router.patch("/users/{name}", response_model=UserOut, dependencies=_site("users", "write"))
def update_user(name: str, body: UserUpdate, request: Request, state: PlatformDep) -> Any:
    """Disable or enable a user, change its site-wide role (``users:admin``) or its
    password. Disabling, enabling and a new password end the user's sessions."""
    security, actor = state.security, actor_of(request)
    current = users.get_user(state.engine, name)
    sent = body.model_fields_set
    role_changes = "role" in sent and body.role != current.role
    if role_changes:
        authorize_also(request, "users", "admin", site=True)
    if current.role == ADMIN and ((body.disabled and not current.disabled) or role_changes):
        _check_not_last_admin(state, name)
    if body.password is not None:
        security.set_password(name, body.password, actor=actor)
    if role_changes:
        security.set_user_role(name, body.role, actor=actor)
    if body.disabled is not None and body.disabled != current.disabled:
        security.set_user_disabled(name, body.disabled, actor=actor)
    return _user_out(users.get_user(state.engine, name))


# -- service accounts -----------------------------------------------------------------------


def _account_out(account: ServiceAccount, secret: str | None = None) -> ServiceAccountOut:
    return ServiceAccountOut(
        name=account.name,
        client_id=account.name,
        role=account.role,
        description=account.description,
        disabled=account.disabled,
        created_at=ms_to_datetime(account.created_at),  # type: ignore[arg-type]
        updated_at=ms_to_datetime(account.updated_at),  # type: ignore[arg-type]
        client_secret=secret,
    )


@router.post(
    "/service-accounts",
    status_code=201,
    response_model=ServiceAccountOut,
    dependencies=_site("users", "write"),
)
def create_service_account(body: ServiceAccountCreate, request: Request, state: PlatformDep) -> Any:
    """Create a service account; the response holds its client secret, shown only now."""
    if body.role is not None:
        authorize_also(request, "users", "admin", site=True)
    account, secret = state.security.create_service_account(
        body.name, role=body.role, description=body.description, actor=actor_of(request)
    )
    return _account_out(account, secret)


@router.get(
    "/service-accounts", response_model=ServiceAccountList, dependencies=_site("users", "read")
)
def list_service_accounts(state: PlatformDep) -> Any:
    return {
        "service_accounts": [_account_out(a) for a in users.list_service_accounts(state.engine)]
    }


@router.patch(
    "/service-accounts/{name}",
    response_model=ServiceAccountOut,
    dependencies=_site("users", "write"),
)
def update_service_account(
    name: str, body: ServiceAccountUpdate, request: Request, state: PlatformDep
) -> Any:
    """Disable or enable, change the role (``users:admin``), or rotate the client secret
    (the new one is in the response, once)."""
    security, actor = state.security, actor_of(request)
    current = users.get_service_account(state.engine, name)
    role_changes = "role" in body.model_fields_set and body.role != current.role
    if role_changes:
        authorize_also(request, "users", "admin", site=True)
        security.set_service_account_role(name, body.role, actor=actor)
    if body.disabled is not None and body.disabled != current.disabled:
        security.set_service_account_disabled(name, body.disabled, actor=actor)
    secret = (
        security.rotate_service_account_secret(name, actor=actor) if body.rotate_secret else None
    )
    return _account_out(users.get_service_account(state.engine, name), secret)


# -- API keys -------------------------------------------------------------------------------


def _key_out(info: ApiKeyInfo, key: str | None = None) -> ApiKeyOut:
    return ApiKeyOut(
        key_id=info.key_id,
        principal=principal_id(info.principal_type, info.principal_name),
        name=info.name,
        scopes=sorted(info.scopes) if info.scopes is not None else None,
        created_at=ms_to_datetime(info.created_at),  # type: ignore[arg-type]
        expires_at=ms_to_datetime(info.expires_at),
        last_used_at=ms_to_datetime(info.last_used_at),
        revoked_at=ms_to_datetime(info.revoked_at),
        key=key,
    )


def _owner(request: Request, ref: str | None) -> tuple[str, str] | None:
    """(type, name) of the principal an API key route acts for: the caller unless another
    is named, which needs ``users:admin``. None with auth off and no name."""
    caller = principal_of(request)
    if ref is None:
        return None if caller is None else (caller.kind, caller.name)
    owner = parse_member(ref, teams=False)
    if caller is None or owner != (caller.kind, caller.name):
        authorize_also(request, "users", "admin", site=True)
    return owner


@router.post(
    "/api-keys",
    status_code=201,
    response_model=ApiKeyOut,
    dependencies=[Depends(authenticated())],
)
def create_api_key(body: ApiKeyCreate, request: Request, state: PlatformDep) -> Any:
    """Create an API key (``shy_...``) for the caller, or for another principal
    (``users:admin``); the response holds the key, shown only now."""
    caller = principal_of(request)
    if caller is not None and caller.scopes is not None:
        raise PermissionDeniedError(
            "An API key limited to scopes cannot create API keys.",
            hint="Create keys while logged in (`shipyard login`).",
        )
    owner = _owner(request, body.principal)
    if owner is None:
        raise InvalidArgumentError(
            "Auth is off, so there is no caller to own the key.",
            hint="Name its owner in 'principal' ('user:<name>' or 'sa:<name>').",
        )
    info, key = state.security.create_api_key(
        *owner,
        name=body.name,
        scopes=body.scopes,
        expires_in=body.expires_in,
        actor=actor_of(request),
    )
    return _key_out(info, key)


@router.get("/api-keys", response_model=ApiKeyList, dependencies=[Depends(authenticated())])
def list_api_keys(
    request: Request,
    state: PlatformDep,
    principal: Annotated[
        str | None, Query(max_length=140, description="Owner; default the caller")
    ] = None,
    every: Annotated[
        bool, Query(alias="all", description="Every key of every owner (users:admin)")
    ] = False,
) -> Any:
    """The caller's API keys (without the keys themselves)."""
    if every:
        authorize_also(request, "users", "admin", site=True)
        infos = apikeys.list_api_keys(state.engine)
    else:
        owner = _owner(request, principal)
        infos = apikeys.list_api_keys(state.engine, *owner) if owner else []
    return {"api_keys": [_key_out(i) for i in infos]}


@router.delete("/api-keys/{key_id}", status_code=204, dependencies=[Depends(authenticated())])
def revoke_api_key(
    key_id: Annotated[str, Path(max_length=64)], request: Request, state: PlatformDep
) -> None:
    """Revoke an API key of the caller (anyone's with ``users:admin``)."""
    info = apikeys.get_api_key(state.engine, key_id)
    _owner(request, principal_id(info.principal_type, info.principal_name))
    state.security.revoke_api_key(key_id, actor=actor_of(request))


# -- workspaces and members -----------------------------------------------------------------


@router.get("/workspaces", response_model=WorkspaceList, dependencies=[Depends(authenticated())])
def list_workspaces(request: Request, state: PlatformDep) -> Any:
    """The workspaces the caller may use, with its roles there (all of them for a
    site-wide role)."""
    from shipyard.store.workspaces import list_workspaces as all_workspaces

    caller = principal_of(request)
    found = []
    for name in all_workspaces(state.engine):
        roles = list(caller.roles_in(name)) if caller is not None else [ADMIN]
        if roles:
            found.append(WorkspaceOut(name=name, roles=roles))
    return {"workspaces": found}


@router.post(
    "/workspaces",
    status_code=201,
    response_model=WorkspaceOut,
    dependencies=_site("workspaces", "write"),
)
def create_workspace(body: WorkspaceCreate, request: Request, state: PlatformDep) -> Any:
    """Create a workspace (site-wide ``workspaces:write``); add members to it next."""
    from shipyard.store.workspaces import create_workspace as create

    create(state.engine, body.name, body.description)
    if state.audit is not None:
        state.audit.append(
            actor_of(request),
            "workspace.create",
            resource_type="workspaces",
            resource_id=body.name,
            workspace=body.name,
        )
    caller = principal_of(request)
    return WorkspaceOut(
        name=body.name, roles=list(caller.roles_in(body.name)) if caller else [ADMIN]
    )


WsPath = Annotated[str, Path(max_length=64, description="Workspace")]


@router.get(
    "/workspaces/{ws}/members",
    response_model=MemberList,
    dependencies=[Depends(requires("workspaces", "read"))],
)
def list_members(ws: WsPath, state: PlatformDep) -> Any:
    from shipyard.store.workspaces import require_workspace

    require_workspace(state.engine, ws)
    return {
        "members": [
            MembershipOut(
                workspace=m.workspace,
                principal=_ref(m.principal_type, m.principal_name),
                role=m.role,
            )
            for m in members.list_workspace_members(state.engine, ws)
        ]
    }


@router.put(
    "/workspaces/{ws}/members/{principal}",
    response_model=MembershipOut,
    dependencies=[Depends(requires("workspaces", "admin"))],
)
def set_member(
    ws: WsPath, principal: PrincipalPath, body: MemberSet, request: Request, state: PlatformDep
) -> Any:
    """Give a user, service account or team ``role`` in workspace ``ws``."""
    kind, name = parse_member(principal)
    membership = state.security.set_workspace_role(
        ws, kind, name, body.role, actor=actor_of(request)
    )
    return MembershipOut(workspace=ws, principal=_ref(kind, name), role=membership.role)


@router.delete(
    "/workspaces/{ws}/members/{principal}",
    status_code=204,
    dependencies=[Depends(requires("workspaces", "admin"))],
)
def remove_member(
    ws: WsPath, principal: PrincipalPath, request: Request, state: PlatformDep
) -> None:
    kind, name = parse_member(principal)
    state.security.remove_workspace_member(ws, kind, name, actor=actor_of(request))


# -- grants ---------------------------------------------------------------------------------


def _grant_out(grant: ResourceGrant) -> GrantOut:
    return GrantOut(
        id=grant.id,
        workspace=grant.workspace,
        resource_type=grant.resource_type,
        resource_name=grant.resource_name,
        principal=_ref(grant.principal_type, grant.principal_name),
        role=grant.role,
        created_at=ms_to_datetime(grant.created_at),  # type: ignore[arg-type]
    )


@router.post(
    "/grants",
    status_code=201,
    response_model=GrantOut,
    dependencies=[Depends(requires("workspaces", "admin"))],
)
def create_grant(body: GrantCreate, ws: Workspace, request: Request, state: PlatformDep) -> Any:
    """Give a principal or team ``role`` on one experiment, model, feature view, pipeline
    or deployment of the request's workspace (e.g. the model a team owns)."""
    if body.workspace is not None and body.workspace != ws:
        raise InvalidArgumentError(
            f"The body names workspace '{body.workspace}' but the request acts in '{ws}'.",
            hint="Send the workspace in the X-Shipyard-Workspace header only.",
        )
    kind, name = parse_member(body.principal)
    grant = state.security.grant(
        ws, body.resource_type, body.resource_name, kind, name, body.role, actor=actor_of(request)
    )
    return _grant_out(grant)


@router.get(
    "/grants", response_model=GrantList, dependencies=[Depends(requires("workspaces", "read"))]
)
async def list_grants(
    ws: Workspace,
    state: PlatformDep,
    resource_type: Annotated[str | None, Query(max_length=64)] = None,
    resource_name: Annotated[str | None, Query(max_length=256)] = None,
) -> Any:
    found = await run_in_threadpool(
        grants.list_grants, state.engine, ws, resource_type, resource_name
    )
    return {"grants": [_grant_out(g) for g in found]}


@router.delete("/grants", status_code=204, dependencies=[Depends(requires("workspaces", "admin"))])
def revoke_grant(
    ws: Workspace,
    request: Request,
    state: PlatformDep,
    resource_type: Annotated[str | None, Query(max_length=64)] = None,
    resource_name: Annotated[str | None, Query(max_length=256)] = None,
    principal: Annotated[
        str | None, Query(max_length=140, description="'user:x', 'sa:y' or 'team:z'")
    ] = None,
    body: GrantRef | None = None,
) -> None:
    """Remove the grant of ``principal`` on one resource of the request's workspace; the
    three fields come as query parameters or as a JSON body."""
    if body is not None:
        resource_type = resource_type or body.resource_type
        resource_name = resource_name or body.resource_name
        principal = principal or body.principal
    if not (resource_type and resource_name and principal):
        raise InvalidArgumentError(
            "Revoking a grant needs resource_type, resource_name and principal.",
            hint="Send them as query parameters or in a JSON body.",
        )
    kind, name = parse_member(principal)
    state.security.revoke_grant(
        ws, resource_type, resource_name, kind, name, actor=actor_of(request)
    )
