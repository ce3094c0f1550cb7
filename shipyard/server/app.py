"""create_app: the platform server built from settings, with no module-level app.

The middleware stack is declared in one list, outermost first: security headers, CORS
(only when origins are configured), the audit of mutating calls, body limits, then the
catch-all that turns unexpected exceptions into a JSON 500; the routers sit inside, each
route checking its declared permission through ``app.state.authorizer``.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI
from starlette.middleware import Middleware

from shipyard import __version__
from shipyard.server import auth
from shipyard.server.audit import AuditMiddleware
from shipyard.server.background import start_background_services
from shipyard.server.deps import PUBLIC, Platform, declared_routes
from shipyard.server.errors import InternalErrorMiddleware, install_error_handlers
from shipyard.server.headers import SecurityHeadersMiddleware
from shipyard.server.limits import BodyLimitMiddleware, RouteLimit
from shipyard.server.routers import (
    artifacts,
    audit,
    features,
    health,
    identities,
    monitoring,
    pipelines,
    registry,
    tracking,
)
from shipyard.server.routers import auth as auth_routes

if TYPE_CHECKING:
    from shipyard.config import Settings
    from shipyard.registry.events import EventBus
    from shipyard.security import SecurityService
    from shipyard.server.deps import Authorizer

__all__ = ["API_PREFIX", "DEFAULT_MAX_ARTIFACT_BYTES", "check_route_permissions", "create_app"]

logger = logging.getLogger("shipyard.server")

API_PREFIX = "/api/v1"

#: Largest artifact one upload may stream when settings name no other limit.
DEFAULT_MAX_ARTIFACT_BYTES = 50 * 1024**3


def _lifespan(deliver_webhooks: bool):  # type: ignore[no-untyped-def]
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        stop = threading.Event()
        thread = None
        if deliver_webhooks:
            from shipyard.registry.events import WebhookDispatcher

            dispatcher = WebhookDispatcher(app.state.platform.engine)
            thread = threading.Thread(
                target=dispatcher.run_forever,
                args=(stop,),
                name="shipyard-webhooks",
                daemon=True,
            )
            thread.start()
        stop_services = start_background_services(app)
        try:
            yield
        finally:
            stop_services()
            stop.set()
            if thread is not None:
                thread.join(timeout=10)
                dispatcher.close()

    return lifespan


def create_app(
    settings: Settings | None = None,
    *,
    max_artifact_bytes: int | None = None,
    authorizer: Authorizer | None = None,
    deliver_webhooks: bool = True,
    events: EventBus | None = None,
    version_metrics: Callable[[str], Mapping[str, float]] | None = None,
    security: SecurityService | None = None,
    audit_log: bool | None = None,
) -> FastAPI:
    """Build the platform server.

    Example::

        from shipyard.config import load_settings
        app = create_app(load_settings(db="sqlite:///meta.db"))
        # uvicorn: python -m shipyard.server.runner --workers 4

    Auth follows ``settings.auth``: ``auto`` (the default) checks credentials unless the
    server binds to a loopback address. With auth on, the first start creates the admin
    from ``SHIPYARD_ADMIN_PASSWORD``.

    Args:
        settings: where the stores are (``db``, ``artifacts``), ``max_request_bytes``,
            the bind address and the auth settings; loaded from the environment when None.
        max_artifact_bytes: largest artifact upload (default: settings'
            ``max_artifact_bytes`` if it has one, else 50 GiB).
        authorizer: ``authorizer(request, resource, action)`` checking each route's
            declared permission; None means the settings decide (a
            :class:`~shipyard.server.auth.SecurityAuthorizer` with auth on, none with
            auth off).
        deliver_webhooks: run a webhook dispatcher thread while the app is served.
        events: the registry's in-process event bus (a new one when None).
        version_metrics: what registry gates read for a version (default: its run's
            latest metrics).
        security: the SecurityService to use (default: built from the settings); tests
            pass one with a cheap password hasher.
        audit_log: record every mutating call in the audit log (default: when auth is on).

    Returns:
        The FastAPI app; OpenAPI at ``/openapi.json``, docs at ``/docs``.

    Raises:
        ConfigError: auth is off on a network address without
            ``allow_unauthenticated_network``, or auth is on and there is no admin and no
            ``SHIPYARD_ADMIN_PASSWORD``.
    """
    if settings is None:
        from shipyard.config import load_settings

        settings = load_settings()
    auth_on = auth.check_exposure(settings)
    artifact_limit = max_artifact_bytes or getattr(
        settings, "max_artifact_bytes", DEFAULT_MAX_ARTIFACT_BYTES
    )
    upload_limit = RouteLimit(
        "PUT",
        re.compile(artifacts.UPLOAD_PATH),
        artifact_limit,
        hint="Ask the server's operator to raise the artifact upload limit, or store the "
        "file elsewhere and record it.",
    )
    state = Platform(settings, events=events, version_metrics=version_metrics)
    if security is not None:
        state.security = security
    if auth_on:
        auth.bootstrap_admin(state.security, settings)
        if authorizer is None:
            authorizer = auth.SecurityAuthorizer(state.security, state)
    if auth_on if audit_log is None else audit_log:
        state.audit = state.security.audit
    middleware = [Middleware(SecurityHeadersMiddleware)]
    if settings.cors_origins:
        from starlette.middleware.cors import CORSMiddleware

        middleware.append(
            Middleware(
                CORSMiddleware,
                allow_origins=list(settings.cors_origins),
                allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
                allow_headers=[
                    "Authorization",
                    "Content-Type",
                    "X-Shipyard-Workspace",
                    "X-Shipyard-Sha256",
                ],
                expose_headers=["X-Shipyard-Sha256", "Retry-After"],
                max_age=600,
            )
        )
    if state.audit is not None:
        middleware.append(Middleware(AuditMiddleware, audit=state.audit))
    middleware += [
        Middleware(
            BodyLimitMiddleware, max_bytes=settings.max_request_bytes, routes=[upload_limit]
        ),
        Middleware(InternalErrorMiddleware),
    ]
    app = FastAPI(
        title="Shipyard",
        version=__version__,
        description="Experiment tracking, model registry and artifacts.",
        openapi_url="/openapi.json",
        docs_url="/docs",
        redoc_url=None,
        lifespan=_lifespan(deliver_webhooks),
        middleware=middleware,
    )
    app.state.platform = state
    app.state.authorizer = authorizer
    install_error_handlers(app)
    app.include_router(health.router)
    app.include_router(auth_routes.well_known_router)
    app.include_router(auth_routes.router, prefix=API_PREFIX)
    app.include_router(tracking.router, prefix=API_PREFIX)
    app.include_router(registry.router, prefix=API_PREFIX)
    app.include_router(artifacts.router, prefix=API_PREFIX)
    app.include_router(identities.router, prefix=API_PREFIX)
    app.include_router(audit.router, prefix=API_PREFIX)
    app.include_router(features.router, prefix=API_PREFIX)
    app.include_router(pipelines.router, prefix=API_PREFIX)
    app.include_router(monitoring.router, prefix=API_PREFIX)
    check_route_permissions(app)
    if auth_on:
        _document_security(app)
    logger.debug("created %r (auth %s)", state, "on" if auth_on else "off")
    return app


def check_route_permissions(app: FastAPI) -> None:
    """Every route the app serves, except FastAPI's docs, must declare a permission.

    Raises:
        ValueError: naming the routes without one.
    """
    exempt = {app.openapi_url, app.docs_url, app.redoc_url, app.swagger_ui_oauth2_redirect_url}
    missing = [
        f"{'/'.join(sorted(r.methods))} {r.path}"
        for r in declared_routes(app)
        if r.permission is None and r.path not in exempt
    ]
    if missing:
        raise ValueError(
            f"Routes without a declared permission: {', '.join(missing)}. Add "
            "dependencies=[Depends(requires(resource, action))] (or public() / "
            "authenticated()) from shipyard.server.deps."
        )


def _document_security(app: FastAPI) -> None:
    """State in OpenAPI (and so in /docs' Authorize button) that routes need a bearer
    token from the password flow, except the public ones."""
    public = {
        (method.lower(), route.path)
        for route in declared_routes(app)
        if route.permission == PUBLIC
        for method in route.methods
    }
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = build()
        components = schema.setdefault("components", {})
        components["securitySchemes"] = {
            "OAuth2": {
                "type": "oauth2",
                "flows": {"password": {"tokenUrl": auth_routes.TOKEN_PATH, "scopes": {}}},
            },
            "Bearer": {"type": "http", "scheme": "bearer", "description": "JWT or shy_ key"},
        }
        for path, operations in schema.get("paths", {}).items():
            for method, operation in operations.items():
                if (method, path) not in public and isinstance(operation, dict):
                    operation["security"] = [{"OAuth2": []}, {"Bearer": []}]
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
