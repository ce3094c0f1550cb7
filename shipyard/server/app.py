"""create_app: the platform server built from settings, with no module-level app.

The middleware stack is declared in one list, outermost first: body limits, then the
catch-all that turns unexpected exceptions into a JSON 500; the routers sit inside.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from fastapi import FastAPI
from starlette.middleware import Middleware

from shipyard import __version__
from shipyard.server.deps import Platform
from shipyard.server.errors import InternalErrorMiddleware, install_error_handlers
from shipyard.server.limits import BodyLimitMiddleware, RouteLimit
from shipyard.server.routers import artifacts, health, registry, tracking

if TYPE_CHECKING:
    from shipyard.config import Settings
    from shipyard.registry.events import EventBus
    from shipyard.server.deps import Authorizer

__all__ = ["API_PREFIX", "DEFAULT_MAX_ARTIFACT_BYTES", "create_app"]

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
        try:
            yield
        finally:
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
) -> FastAPI:
    """Build the platform server.

    Example::

        from shipyard.config import load_settings
        app = create_app(load_settings(db="sqlite:///meta.db"))
        # uvicorn: python -m shipyard.server.runner --workers 4

    Args:
        settings: where the stores are (``db``, ``artifacts``) and ``max_request_bytes``;
            loaded from the environment when None.
        max_artifact_bytes: largest artifact upload (default: settings'
            ``max_artifact_bytes`` if it has one, else 50 GiB).
        authorizer: ``authorizer(request, resource, action)`` checking each route's
            declared permission; None allows everything (auth off).
        deliver_webhooks: run a webhook dispatcher thread while the app is served.
        events: the registry's in-process event bus (a new one when None).
        version_metrics: what registry gates read for a version (default: its run's
            latest metrics).

    Returns:
        The FastAPI app; OpenAPI at ``/openapi.json``, docs at ``/docs``.
    """
    if settings is None:
        from shipyard.config import load_settings

        settings = load_settings()
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
    app = FastAPI(
        title="Shipyard",
        version=__version__,
        description="Experiment tracking, model registry and artifacts.",
        openapi_url="/openapi.json",
        docs_url="/docs",
        redoc_url=None,
        lifespan=_lifespan(deliver_webhooks),
        middleware=[
            Middleware(
                BodyLimitMiddleware, max_bytes=settings.max_request_bytes, routes=[upload_limit]
            ),
            Middleware(InternalErrorMiddleware),
        ],
    )
    app.state.platform = Platform(settings, events=events, version_metrics=version_metrics)
    app.state.authorizer = authorizer
    install_error_handlers(app)
    app.include_router(health.router)
    app.include_router(tracking.router, prefix=API_PREFIX)
    app.include_router(registry.router, prefix=API_PREFIX)
    app.include_router(artifacts.router, prefix=API_PREFIX)
    logger.debug("created %r", app.state.platform)
    return app
