"""Run the platform server with uvicorn: ``python -m shipyard.server.runner --workers 4``.

Every accepted connection gets ``TCP_NODELAY``. With several workers uvicorn hands each
worker a listening socket created without ``IPPROTO_TCP``; asyncio then skips setting
``TCP_NODELAY`` on accepted sockets, and each small response waits ~40 ms for the client's
delayed ACK (Nagle). The HTTP protocol classes below set the option in
``connection_made``, in every worker, whatever the event loop.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import socket
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from uvicorn.protocols.http.h11_impl import H11Protocol

if TYPE_CHECKING:
    from fastapi import FastAPI

    from shipyard.config import Settings

__all__ = ["app_from_env", "main", "serve"]

logger = logging.getLogger("shipyard.server")


def set_nodelay(transport: asyncio.BaseTransport) -> None:
    """Turn off Nagle's algorithm on a TCP transport's socket (no-op for Unix sockets)."""
    sock = transport.get_extra_info("socket")
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        with contextlib.suppress(OSError):  # the peer may already be gone
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class NoDelayH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with TCP_NODELAY on each connection."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:  # type: ignore[override]
        set_nodelay(transport)
        super().connection_made(transport)  # type: ignore[arg-type]


try:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
except ImportError:  # pragma: no cover - httptools is part of uvicorn[standard]
    HttpProtocol: type[asyncio.Protocol] = NoDelayH11Protocol
else:

    class NoDelayHttpToolsProtocol(HttpToolsProtocol):
        """uvicorn's httptools protocol with TCP_NODELAY on each connection."""

        def connection_made(self, transport: asyncio.BaseTransport) -> None:  # type: ignore[override]
            set_nodelay(transport)
            super().connection_made(transport)  # type: ignore[arg-type]

    HttpProtocol = NoDelayHttpToolsProtocol


def app_from_env() -> FastAPI:
    """The app factory each uvicorn worker calls; settings come from SHIPYARD_* variables."""
    from shipyard.config import load_settings
    from shipyard.server.app import create_app

    return create_app(load_settings())


#: Settings workers never need, so they are not handed to them: the first admin's
#: password is used once, before the workers start, and the server is no SDK client.
_NOT_EXPORTED = frozenset({"admin_password", "token"})


def export_settings(settings: Settings) -> None:
    """Put the settings in the environment, where spawned workers rebuild them from.

    All of them, not only the stores: the bind address, for one, decides whether auth is
    required, and a worker must not see a loopback default instead. The JWT secret goes
    too (every worker must sign alike); the admin password and the client token are
    removed from the environment instead.
    """
    from pydantic import SecretStr

    for name, value in settings.model_dump().items():
        if name in _NOT_EXPORTED:
            os.environ.pop(f"SHIPYARD_{name.upper()}", None)
            continue
        if value is None:
            continue
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        elif isinstance(value, list | dict):
            value = json.dumps(value)
        os.environ[f"SHIPYARD_{name.upper()}"] = str(value)
    os.environ["SHIPYARD_URL"] = ""  # the server itself always uses local stores


def serve(
    settings: Settings,
    *,
    workers: int = 1,
    loop: str = "auto",
    log_level: str = "info",
    access_log: bool = False,
    **uvicorn_options: Any,
) -> None:
    """Serve the platform on ``settings.host:settings.port`` until interrupted.

    The schema is migrated once here, before workers start, so they never race on it,
    and the security checks run here too, so a refused start fails before any worker.

    Args:
        settings: store locations, bind address and limits.
        workers: worker processes (uvicorn's multiprocess supervisor when > 1).
        loop: "auto" (uvloop when installed), "asyncio" or "uvloop".
        log_level: uvicorn's log level.
        access_log: log one line per request (costs time on hot paths).
        **uvicorn_options: passed to ``uvicorn.run``.
    """
    import uvicorn

    from shipyard.server.auth import preflight
    from shipyard.store.db import dispose_all, engine_for

    engine_for(settings.db)
    # Refuse to start (auth off on a network address, no admin) before any worker does,
    # and create the first admin once; then the password can leave the environment.
    preflight(settings)
    export_settings(settings)
    dispose_all()  # no pooled connection may cross into the workers
    uvicorn.run(
        "shipyard.server.runner:app_from_env",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=workers,
        loop=loop,  # type: ignore[arg-type]
        http=HttpProtocol,
        ws="none",
        lifespan="on",
        log_level=log_level,
        access_log=access_log,
        **uvicorn_options,
    )


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m shipyard.server.runner``: options override SHIPYARD_* settings."""
    parser = argparse.ArgumentParser(prog="python -m shipyard.server.runner", description=__doc__)
    parser.add_argument("--host", help="bind address (SHIPYARD_HOST)")
    parser.add_argument("--port", type=int, help="port (SHIPYARD_PORT)")
    parser.add_argument("--workers", type=int, default=1, help="worker processes")
    parser.add_argument("--db", help="metadata store URL (SHIPYARD_DB)")
    parser.add_argument("--artifacts", help="artifact root URL (SHIPYARD_ARTIFACTS)")
    parser.add_argument("--loop", default="auto", choices=["auto", "asyncio", "uvloop"])
    parser.add_argument("--log-level", default="info")
    parser.add_argument("--access-log", action="store_true")
    args = parser.parse_args(argv)

    from shipyard.config import load_settings

    overrides = {
        key: value
        for key in ("host", "port", "db", "artifacts")
        if (value := getattr(args, key)) is not None
    }
    serve(
        load_settings(**overrides),
        workers=args.workers,
        loop=args.loop,
        log_level=args.log_level,
        access_log=args.access_log,
    )


if __name__ == "__main__":
    # Run the imported module's main, so the protocol classes uvicorn pickles for its
    # worker processes are named shipyard.server.runner.*, not __main__.*.
    from shipyard.server.runner import main as _main

    _main()
