"""Request-scoped dependencies: the workspace a request targets, its stores, and the
permission every route declares.

Stores are built once per workspace and cached on the :class:`Platform` (one per app), so
a request costs no engine creation, migration or workspace lookup after the first.
"""

from __future__ import annotations

import inspect
import re
import threading
from collections.abc import Awaitable, Callable, Mapping
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
    from shipyard.store.artifacts import ArtifactStore
    from shipyard.tracking.store import TrackingStore

__all__ = [
    "PERMISSION_KEY",
    "WORKSPACE_PATTERN",
    "Authorizer",
    "DeclaredRoute",
    "Permission",
    "PermissionRoute",
    "Platform",
    "declared_routes",
    "platform",
    "registry_store",
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


@dataclass(frozen=True)
class Permission:
    """A permission a route needs: an action on a resource type, e.g. ``runs:write``."""

    resource: str
    action: str

    def __str__(self) -> str:
        return f"{self.resource}:{self.action}"


def requires(resource: str, action: str) -> Callable[[Request], Awaitable[None]]:
    """A dependency that declares (and, once auth is on, checks) a route's permission.

    Every /api route lists one in ``dependencies=[Depends(requires("runs", "write"))]``;
    a test walks the route table and fails for a route without. With no authorizer
    installed (``app.state.authorizer`` is None: auth off) it allows everything.
    """
    permission = Permission(resource, action)

    async def check_permission(request: Request) -> None:
        authorizer: Authorizer | None = getattr(request.app.state, "authorizer", None)
        if authorizer is None:
            return
        outcome = authorizer(request, resource, action)
        if inspect.isawaitable(outcome):
            await outcome

    check_permission.permission = permission  # type: ignore[attr-defined]
    check_permission.__name__ = f"requires_{resource}_{action}"
    return check_permission


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
