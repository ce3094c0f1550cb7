"""Authentication and authorization for the platform server: when auth is on, who may
start the server, and the authorizer every route's declared permission goes through.

Secure by default: ``SHIPYARD_AUTH=auto`` turns auth on unless the server binds to a
loopback address, and turning it off on a network address refuses to start unless
``SHIPYARD_ALLOW_UNAUTHENTICATED_NETWORK`` says so (then it warns on every start).
"""

from __future__ import annotations

import ipaddress
import logging
from typing import TYPE_CHECKING, Any

from starlette.concurrency import run_in_threadpool

from shipyard.errors import AuthError, ConfigError, PermissionDeniedError, ShipyardError
from shipyard.security.apikeys import API_KEY_PREFIX
from shipyard.security.rbac import GRANT_TYPES_FOR, roles_with
from shipyard.server.deps import (
    AUTHENTICATED,
    SITE,
    RequestContext,
    request_context,
    requested_workspace,
)

if TYPE_CHECKING:
    import argon2
    from fastapi import Request

    from shipyard.config import Settings
    from shipyard.security import Principal, SecurityService
    from shipyard.server.deps import Platform

__all__ = [
    "SecurityAuthorizer",
    "auth_required",
    "bootstrap_admin",
    "check_exposure",
    "is_loopback",
    "preflight",
    "security_service",
]

logger = logging.getLogger("shipyard.server")

_LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and ``localhost``; False for anything reachable from
    the network (``0.0.0.0``, ``::``, a LAN address, a host name)."""
    name = host.strip().strip("[]").lower()
    if name in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def auth_required(settings: Settings) -> bool:
    """Whether the server checks credentials: ``on``, ``off``, or (``auto``) on unless it
    binds to a loopback address."""
    if settings.auth == "auto":
        return not is_loopback(settings.host)
    return settings.auth == "on"


def check_exposure(settings: Settings) -> bool:
    """Refuse to serve without auth on a network address, unless explicitly allowed.

    Returns:
        Whether auth is on.

    Raises:
        ConfigError: auth is off, the host is not loopback, and
            ``allow_unauthenticated_network`` is not set.
    """
    required = auth_required(settings)
    if required or is_loopback(settings.host):
        return required
    if not settings.allow_unauthenticated_network:
        raise ConfigError(
            f"Refusing to serve without authentication on {settings.host!r}, a network "
            "address: anyone who can reach it could read and change every model and run.",
            hint="Turn auth on (unset SHIPYARD_AUTH or set it to 'on'), bind to 127.0.0.1, "
            "or, if a proxy in front really authenticates every request, set "
            "SHIPYARD_ALLOW_UNAUTHENTICATED_NETWORK=true.",
        )
    logger.warning(
        "SECURITY WARNING: authentication is OFF on network address %s "
        "(SHIPYARD_AUTH=off, SHIPYARD_ALLOW_UNAUTHENTICATED_NETWORK=true). Anyone who can "
        "reach this port can read and change every model, run and artifact.",
        settings.host,
    )
    return False


def security_service(
    settings: Settings, *, hasher: argon2.PasswordHasher | None = None
) -> SecurityService:
    """The :class:`SecurityService` the settings describe (algorithm, secret, lifetimes)."""
    from shipyard.security import SecurityConfig, SecurityService
    from shipyard.store.db import engine_for

    config = SecurityConfig.from_settings(settings)
    return SecurityService(engine_for(settings.db), settings.home, config, hasher=hasher)


def bootstrap_admin(security: SecurityService, settings: Settings) -> None:
    """Create the first admin from ``SHIPYARD_ADMIN_PASSWORD`` when there is none.

    Raises:
        ConfigError: No admin exists and no password is set (there is never a default).
    """
    password = settings.admin_password.get_secret_value() if settings.admin_password else None
    if security.bootstrap_admin(password, settings.admin_user) is not None:
        logger.info("created the first admin user %r", settings.admin_user)


def preflight(settings: Settings) -> bool:
    """The start-up checks of a server process, before it spawns workers: refuse an
    unauthenticated network address, and with auth on create the first admin.

    Returns:
        Whether auth is on.
    """
    required = check_exposure(settings)
    if required:
        bootstrap_admin(security_service(settings), settings)
    return required


def _denied_site_wide(principal: Principal, resource: str, action: str) -> PermissionDeniedError:
    name = f"{resource}:{action}"
    return PermissionDeniedError(
        f"{principal.id} may not {action} {resource}: '{name}' needs a site-wide role "
        f"({', '.join(roles_with(resource, action))}); workspace roles do not count.",
        hint="Ask an admin to run `shipyard users set-role`.",
    )


class SecurityAuthorizer:
    """``authorizer(request, resource, action)`` backed by a :class:`SecurityService`.

    Authenticates the bearer credential (JWT or ``shy_`` API key) once per request,
    keeps the principal in the request context, and checks the permission in the
    request's workspace (path ``{ws}``, else header, else query). A per-resource grant
    is honoured with the model name from the path; for experiments and runs the
    experiment's name is looked up only when the roles alone deny.

    The hot path (a token or API key seen in the last seconds, its principal cached) does
    no I/O and runs on the event loop; an API key whose row must be read, or whose last
    use must be written, is checked in the threadpool.
    """

    def __init__(self, security: SecurityService, platform: Platform) -> None:
        self.security = security
        self.platform = platform

    def __repr__(self) -> str:
        return f"SecurityAuthorizer({self.security!r})"

    async def authenticate(self, request: Request, context: RequestContext) -> Principal:
        """The caller of ``request`` (cached in its context); AuthError when there is none."""
        principal = context.principal
        if principal is None:
            header = request.headers.get("authorization")
            key = header[7:].strip() if header else ""
            if key.startswith(API_KEY_PREFIX) and not self.security.api_keys.is_warm(key):
                # Its row must be read, or its last use written: not on the event loop.
                principal = await run_in_threadpool(self.security.authenticate, header)
            else:
                principal = self.security.authenticate(header)
            context.principal = principal
        return principal

    async def __call__(self, request: Request, resource: str, action: str) -> None:
        context = request_context(request.scope)
        principal = await self.authenticate(request, context)
        if resource == AUTHENTICATED.resource:
            return
        permission = context.permission
        if permission is not None and permission.site:
            self._authorize_site(context, principal, resource, action)
            return
        params = request.path_params
        workspace = params.get("ws") or requested_workspace(request)
        context.workspace = workspace
        name = params.get("name") if resource in _NAMED_BY_PATH else None
        try:
            self.security.authorize(principal, workspace, resource, action, name)
        except PermissionDeniedError:
            if name is not None or not GRANT_TYPES_FOR.get(resource):
                raise
            # Only now is the name worth a query: a grant on it may still allow this.
            name = await run_in_threadpool(self._experiment_name, workspace, params)
            if name is None:
                raise
            self.security.authorize(principal, workspace, resource, action, name)

    def check(
        self,
        request: Request,
        resource: str,
        action: str,
        resource_name: str | None = None,
        *,
        site: bool = False,
    ) -> None:
        """A further permission a route needs, decided by its input (see
        ``deps.authorize_also``); the request was authenticated by its declared check."""
        context = request_context(request.scope)
        principal = context.principal
        if principal is None:
            raise AuthError("Authentication required.")
        if site:
            self._authorize_site(context, principal, resource, action)
            return
        workspace = context.workspace
        if workspace is None:
            workspace = request.path_params.get("ws") or requested_workspace(request)
        self.security.authorize(principal, workspace, resource, action, resource_name)

    def _authorize_site(
        self, context: RequestContext, principal: Principal, resource: str, action: str
    ) -> None:
        context.workspace = SITE
        try:
            self.security.authorize(principal, SITE, resource, action)
        except PermissionDeniedError as exc:
            if principal.scopes is not None and "scopes" in exc.message:
                raise
            raise _denied_site_wide(principal, resource, action) from None

    def _experiment_name(self, workspace: str, params: dict[str, Any]) -> str | None:
        """The name of the experiment a run or experiment route acts on, for grants."""
        try:
            store = self.platform.tracking(self.platform.check_workspace(workspace))
            experiment_id = params.get("experiment_id")
            if experiment_id is None and "run_id" in params:
                experiment_id = store.get_run(params["run_id"]).info.experiment_id
            if experiment_id is None:
                return None
            return store.get_experiment(experiment_id).name
        except ShipyardError:
            return None


#: Resource types whose routes name the resource in the ``{name}`` path parameter
#: (``/models/{name}/...``, ``/experiments/by-name/{name}``).
_NAMED_BY_PATH = frozenset({"models", "aliases", "promotions", "experiments"})
