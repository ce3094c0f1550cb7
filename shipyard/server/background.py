"""Background services the platform server runs while it is up (scheduler, monitors...).

Each component that needs a loop beside the routes adds one factory to
:data:`SERVICE_FACTORIES`. A factory gets the app (settings and stores on
``app.state.platform``) and returns a ``stop()`` callable, or None when its settings say
it should not run.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

__all__ = ["SERVICE_FACTORIES", "start_background_services"]

logger = logging.getLogger("shipyard.server")

ServiceFactory = Callable[[Any], Callable[[], None] | None]

#: ``"module:function"`` of every service factory, imported when the server starts.
SERVICE_FACTORIES: list[str] = [
    "shipyard.monitoring.service:monitor_service",
    "shipyard.pipelines.scheduler:start_scheduler",
]


def start_background_services(app: Any) -> Callable[[], None]:
    """Start every configured service; return one callable that stops them all."""
    from importlib import import_module

    stops: list[Callable[[], None]] = []
    for spec in SERVICE_FACTORIES:
        module, _, name = spec.partition(":")
        stop = getattr(import_module(module), name)(app)
        if stop is not None:
            stops.append(stop)

    def stop_all() -> None:
        for stop in reversed(stops):
            try:
                stop()
            except Exception:
                logger.exception("stopping a background service failed")

    return stop_all
