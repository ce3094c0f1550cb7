"""The platform server: REST API (/api/v1) over the tracking, registry and artifact stores.

Build it with :func:`create_app` and run it with ``python -m shipyard.server.runner``
(or ``shipyard server``). Importing this package stays light: FastAPI loads on first use
of :func:`create_app`.
"""

from __future__ import annotations

from typing import Any

__all__ = ["create_app"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from shipyard.server.app import create_app

        return create_app
    raise AttributeError(f"module 'shipyard.server' has no attribute {name!r}")
