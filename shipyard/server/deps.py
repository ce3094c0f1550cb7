"""Request-scoped dependencies: the workspace a request targets, its stores, and the
permission every route declares.

Stores are built once per workspace and cached on the :class:`Platform` (one per app), so
a request costs no engine creation, migration or workspace lookup after the first.
"""

from __future__ import annotations

import inspect
import re
import threading
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import Depends, Header, Query, Request
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool

from shipyard._http import WORKSPACE_HEADER
from shipyard.errors import InvalidArgumentError
from shipyard.store.schema import DEFAULT_WORKSPACE

if TYPE_CHECKING:
    from fastapi.dependencies.models import Dependant
    from sqlalchemy.engine import Engine

    from shipyard.config import Settings
    from shipyard.registry.events import EventBus
    from shipyard.registry.store import RegistryStore
    from shipyard.security import AuditLog, SecurityService
    from shipyard.security.entities import Principal
    from shipyard.store.artifacts import ArtifactStore
    from shipyard.tracking.store import TrackingStore

__all__ = [
    "AUTHENTICATED",
    "CONTEXT_KEY",
    "PERMISSION_KEY",
    "PUBLIC",
    "SITE",
    "WORKSPACE_PATTERN",
    "Authorizer",
    "DeclaredRoute",
    "Permission",
    "PermissionRoute",
    "Platform",
    "RequestContext",
    "actor_of",
    "authenticated",
    "authorize_also",
    "declared_routes",
    "note_resource",
    "platform",
    "principal_of",
    "public",
    "registry_store",
    "request_context",
    "requested_workspace",
    "requires",
    "route_permission",
    "tracking_store",
    "workspace",
]

#: ``authorizer(request, resource, action)``; raises AuthError/PermissionDeniedError to refuse.
Authorizer = Callable[[Request, str, str], Awaitable[None] | None]

#: What a workspace name looks like (checked by shipyard.store.workspaces), for OpenAPI.
WORKSPACE_PATTERN = "^[a-z0-9][a-z0-9_-]{0,63}$"

#: OpenAPI extension key under which each operation states its permission.
PERMISSION_KEY = "x-shipyard-permission"


class Platform:
    """What every request shares: settings, the engine, and stores cached per workspace.

    Args:
        settings: the server's settings (``db``, ``artifacts`` ...).
        events: the registry's event bus; a new one when None.
        version_metrics: what registry gates read for a version's run (default: the
            run's latest metrics in the tracking store).
    """

    def __init__(
        self,
        settings: Settings,
        *,
        events: EventBus | None = None,
        version_metrics: Callable[[str], Mapping[str, float]] | None = None,
    ) -> None:
        from shipyard.registry.events import EventBus
        from shipyard.store.artifacts import ArtifactStore
        from shipyard.store.db import engine_for
        from shipyard.store.workspaces import ensure_workspace

        self.settings = settings
        self.engine: Engine = engine_for(settings.db)
        ensure_workspace(self.engine, DEFAULT_WORKSPACE)
        self.artifacts: ArtifactStore = ArtifactStore(settings.artifacts)
        self.events = events if events is not None else EventBus()
        self.version_metrics = version_metrics
        self._lock = threading.Lock()
        self._known: set[str] = {DEFAULT_WORKSPACE}
        self._tracking: dict[str, TrackingStore] = {}
        self._registry: dict[str, RegistryStore] = {}
        #: The audit log mutating calls are recorded in; None when auditing is off.
        self.audit: AuditLog | None = None
        self._security: SecurityService | None = None

    @property
    def security(self) -> SecurityService:
        """The security service (identities, tokens, audit), built on first use when the
        app did not get one (auth off: only the identity routes need it)."""
        if self._security is None:
            from shipyard.server.auth import security_service

            with self._lock:
                if self._security is None:
                    self._security = security_service(self.settings)
        return self._security

    @security.setter
    def security(self, service: SecurityService) -> None:
        self._security = service

    def __repr__(self) -> str:
        from shipyard.store.db import mask_url

        return f"Platform(db={mask_url(self.settings.db)!r}, artifacts={self.artifacts!r})"

    def check_workspace(self, name: str) -> str:
        """``name`` if it is a valid, existing workspace; remembered once found."""
        if name in self._known:
            return name
        from shipyard.store.workspaces import check_workspace_name, require_workspace

        check_workspace_name(name)
        require_workspace(self.engine, name)
        with self._lock:
            self._known.add(name)
        return name

    def tracking(self, workspace: str) -> TrackingStore:
        """The tracking store bound to ``workspace`` (cached)."""
        store = self._tracking.get(workspace)
        if store is None:
            from shipyard.tracking.sql import SqlTrackingStore

            store = SqlTrackingStore(
                self.engine, workspace, artifact_root=self.settings.artifacts.rstrip("/")
            )
            with self._lock:
                store = self._tracking.setdefault(workspace, store)
        return store

    def registry(self, workspace: str) -> RegistryStore:
        """The registry store bound to ``workspace`` (cached), publishing to :attr:`events`."""
        store = self._registry.get(workspace)
        if store is None:
            from shipyard.registry.sql import SqlRegistryStore

            store = SqlRegistryStore(
                self.engine, workspace, events=self.events, version_metrics=self.version_metrics
            )
            with self._lock:
                store = self._registry.setdefault(workspace, store)
        return store


def _platform(request: Request) -> Platform:
    return request.app.state.platform  # type: ignore[no-any-return]


async def platform(request: Request) -> Platform:
    """The app's :class:`Platform` (async: a plain ``def`` would cost a threadpool hop)."""
    return _platform(request)


def requested_workspace(request: Request) -> str:
    """The workspace a request names (header, else query, else default), unchecked."""
    header = request.headers.get(WORKSPACE_HEADER)
    if header is not None:
        return header
    return request.query_params.get("workspace", DEFAULT_WORKSPACE)


async def workspace(
    request: Request,
    header: Annotated[
        str | None,
        Header(
            alias=WORKSPACE_HEADER,
            description="Workspace of the request (default 'default').",
            json_schema_extra={"pattern": WORKSPACE_PATTERN},
        ),
    ] = None,
    query: Annotated[
        str | None,
        Query(
            alias="workspace",
            description=f"Workspace, when the {WORKSPACE_HEADER} header cannot be set.",
            json_schema_extra={"pattern": WORKSPACE_PATTERN},
        ),
    ] = None,
) -> str:
    """The request's workspace: header ``X-Shipyard-Workspace``, else ``?workspace=``.

    Raises:
        InvalidArgumentError: the name is invalid, or header and query disagree.
        NotFoundError: no such workspace (with a hint to create it).
    """
    if header is not None and query is not None and header != query:
        raise InvalidArgumentError(
            f"The {WORKSPACE_HEADER} header says '{header}' but ?workspace= says '{query}'.",
            hint="Name the workspace once, in the header or in the query.",
        )
    if "\x00" in request.url.path or "%00" in request.url.query:
        # Every API route depends on this, so no NUL byte from a path or query parameter
        # reaches a database (PostgreSQL refuses them in text).
        raise InvalidArgumentError(
            "The request path or query contains a NUL character.",
            hint="Remove it; names, keys and ids never contain NUL.",
        )
    name = header if header is not None else query if query is not None else DEFAULT_WORKSPACE
    state = _platform(request)
    if name in state._known:
        return name
    return await run_in_threadpool(state.check_workspace, name)


Workspace = Annotated[str, Depends(workspace)]


async def tracking_store(request: Request, ws: Workspace) -> TrackingStore:
    """The tracking store of the request's workspace."""
    return _platform(request).tracking(ws)


async def registry_store(request: Request, ws: Workspace) -> RegistryStore:
    """The registry store of the request's workspace."""
    return _platform(request).registry(ws)


# -- permissions ----------------------------------------------------------------------------

#: Key in the ASGI scope of the :class:`RequestContext` a request's layers share.
CONTEXT_KEY = "shipyard.context"

#: The "workspace" site-wide permissions are checked in: no workspace role counts there.
SITE = ""


@dataclass(frozen=True)
class Permission:
    """A permission a route needs: an action on a resource type, e.g. ``runs:write``.

    ``site`` permissions (users, signing keys, the audit log) are held through the
    principal's site-wide role only: an admin of one workspace is not an admin of users.
    :data:`PUBLIC` and :data:`AUTHENTICATED` are the two declarations outside the role
    table: no credential at all, and any valid credential.
    """

    resource: str
    action: str
    site: bool = False

    def __str__(self) -> str:
        if self in (PUBLIC, AUTHENTICATED):
            return self.resource
        return f"{self.resource}:{self.action}"

    @property
    def is_public(self) -> bool:
        return self == PUBLIC


PUBLIC = Permission("public", "none")
AUTHENTICATED = Permission("authenticated", "any")


class RequestContext:
    """What the layers of one request tell each other: the route's permission, the caller
    (set by the authorizer), the workspace it acted in and, for creations, the new
    resource's id. The audit middleware reads it after the route ran."""

    __slots__ = ("permission", "principal", "resource_id", "workspace")

    def __init__(self) -> None:
        self.permission: Permission | None = None
        self.principal: Principal | None = None
        self.workspace: str | None = None
        self.resource_id: str | None = None


def request_context(scope: MutableMapping[str, Any]) -> RequestContext:
    """The request's :class:`RequestContext`, created on first use."""
    context = scope.get(CONTEXT_KEY)
    if context is None:
        context = scope[CONTEXT_KEY] = RequestContext()
    return context  # type: ignore[no-any-return]


def principal_of(request: Request) -> Principal | None:
    """The authenticated caller, or None when auth is off."""
    context: RequestContext | None = request.scope.get(CONTEXT_KEY)
    return None if context is None else context.principal


def actor_of(request: Request) -> str:
    """The audit actor of a request: the principal's id, or ``anonymous`` (auth off)."""
    principal = principal_of(request)
    return principal.id if principal is not None else "anonymous"


def note_resource(request: Request, resource_id: object) -> None:
    """Name the resource a creating route made, for its audit record."""
    request_context(request.scope).resource_id = str(resource_id)


def _guard(permission: Permission) -> Callable[[Request], Awaitable[None]]:
    resource, action = permission.resource, permission.action

    async def check_permission(request: Request) -> None:
        request_context(request.scope).permission = permission
        if permission.is_public:
            return
        authorizer: Authorizer | None = getattr(request.app.state, "authorizer", None)
        if authorizer is None:
            return
        outcome = authorizer(request, resource, action)
        if inspect.isawaitable(outcome):
            await outcome

    check_permission.permission = permission  # type: ignore[attr-defined]
    check_permission.__name__ = f"requires_{resource}_{action}"
    return check_permission


def requires(
    resource: str, action: str, *, site: bool = False
) -> Callable[[Request], Awaitable[None]]:
    """A dependency that declares (and, once auth is on, checks) a route's permission.

    Every /api route lists one in ``dependencies=[Depends(requires("runs", "write"))]``;
    a test walks the route table and fails for a route without. With no authorizer
    installed (``app.state.authorizer`` is None: auth off) it allows everything.

    Args:
        resource: A resource type of :data:`shipyard.security.rbac.RESOURCE_ACTIONS`.
        action: One of that type's actions.
        site: Check it against the site-wide role only (users, keys, audit).

    Raises:
        ValueError: The permission does not exist (so a typo fails when the app starts).
    """
    from shipyard.security.rbac import check_permission

    check_permission(resource, action)
    return _guard(Permission(resource, action, site))


def public() -> Callable[[Request], Awaitable[None]]:
    """Declare a route that needs no credential (health, the token endpoint, JWKS)."""
    return _guard(PUBLIC)


def authenticated() -> Callable[[Request], Awaitable[None]]:
    """Declare a route any authenticated caller may use (``/auth/me``, its own API keys)."""
    return _guard(AUTHENTICATED)


def authorize_also(
    request: Request,
    resource: str,
    action: str,
    resource_name: str | None = None,
    *,
    site: bool = False,
) -> None:
    """Check a permission a route needs beyond its declared one, decided by its input
    (moving a gated alias also needs ``promotions:write``). A no-op with auth off.

    Call it from a route after its declared permission passed (the caller is known).
    """
    authorizer: Any = getattr(request.app.state, "authorizer", None)
    check = getattr(authorizer, "check", None)
    if check is not None:
        check(request, resource, action, resource_name, site=site)


def _find_permission(dependant: Dependant) -> Permission | None:
    for dependency in dependant.dependencies:
        found = getattr(dependency.call, "permission", None)
        if isinstance(found, Permission):
            return found
        nested = _find_permission(dependency)
        if nested is not None:
            return nested
    return None


def route_permission(route: Any) -> Permission | None:
    """The permission a route declared through :func:`requires`, or None."""
    dependant = getattr(route, "dependant", None)
    return None if dependant is None else _find_permission(dependant)


class PermissionRoute(APIRoute):
    """An APIRoute that states its declared permission in OpenAPI (``x-shipyard-permission``)."""

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        super().__init__(path, endpoint, **kwargs)
        self.permission = route_permission(self)
        if self.permission is not None:
            self.openapi_extra = {
                **(self.openapi_extra or {}),
                PERMISSION_KEY: str(self.permission),
            }
            if self.permission.site:
                self.openapi_extra[f"{PERMISSION_KEY}-site-wide"] = True


@dataclass(frozen=True)
class DeclaredRoute:
    """One HTTP route of an app as served: its full path, methods and permission."""

    path: str
    methods: frozenset[str]
    permission: Permission | None
    path_regex: re.Pattern[str] | None = None


def declared_routes(app: Any) -> list[DeclaredRoute]:
    """Every route the app serves, with the permission each declared (None if none).

    Walks included routers too (newer FastAPI keeps them as nested entries of
    ``app.routes`` instead of copying their routes).
    """
    try:
        from fastapi.routing import iter_route_contexts
    except ImportError:  # FastAPI before included routers were kept nested
        contexts: Any = app.routes
    else:
        contexts = iter_route_contexts(app.routes)
    found = []
    for route in contexts:
        path = getattr(route, "path", None)
        if path is None:
            continue
        effective = getattr(route, "_effective_route", route)
        found.append(
            DeclaredRoute(
                path=path,
                methods=frozenset(getattr(route, "methods", None) or ()),
                permission=route_permission(effective),
                path_regex=getattr(route, "path_regex", None),
            )
        )
    return found
