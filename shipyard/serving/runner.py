"""Run the model server with uvicorn: what ``shipyard serve`` calls.

Models are loaded (and hash-checked) once in the parent before anything listens, so a
wrong URI or a tampered file fails the command instead of a worker. With several
workers, each worker process loads them again from the serve configuration the parent
puts in ``SHIPYARD_SERVE_CONFIG``, and Prometheus metrics are shared through files in a
fresh ``PROMETHEUS_MULTIPROC_DIR``. Every accepted connection gets ``TCP_NODELAY``
(see :mod:`shipyard.server.runner`).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fastapi import FastAPI

    from shipyard.config import Settings
    from shipyard.serving.repository import ModelRepository
    from shipyard.serving.rollout import Rollout
    from shipyard.serving.runtime import ServeOptions

__all__ = ["ServeConfig", "app_from_env", "build_app", "load_repository", "serve"]

logger = logging.getLogger("shipyard.serving")

CONFIG_ENV = "SHIPYARD_SERVE_CONFIG"


@dataclass(frozen=True)
class ServeConfig:
    """What to serve, and how: everything ``shipyard serve`` takes besides settings."""

    models: list[str]
    shadows: list[str] = field(default_factory=list)
    canaries: list[str] = field(default_factory=list)  # "URI=PERCENT"
    options: dict[str, Any] = field(default_factory=dict)
    grpc_port: int | None = None

    def serve_options(self) -> ServeOptions:
        from shipyard.serving.runtime import ServeOptions

        return ServeOptions(**self.options)

    def rollouts(self) -> list[Rollout]:
        """Champion URIs with the canary and shadow of the same registered model."""
        from shipyard.errors import InvalidArgumentError
        from shipyard.serving.repository import parse_model_uri
        from shipyard.serving.rollout import Rollout, parse_canary

        champions = {parse_model_uri(uri)[0]: uri for uri in self.models}
        canary: dict[str, tuple[str, float]] = {}
        shadow: dict[str, str] = {}
        for text in self.canaries:
            uri, percent = parse_canary(text)
            canary[parse_model_uri(uri)[0]] = (uri, percent)
        for uri in self.shadows:
            shadow[parse_model_uri(uri)[0]] = uri
        for name in [*canary, *shadow]:
            if name not in champions:
                raise InvalidArgumentError(
                    f"A canary or shadow of '{name}' needs '{name}' itself to be served.",
                    hint=f"Add models:/{name}@champion to the models to serve.",
                )
        return [
            Rollout(
                champion=uri,
                canary=canary.get(name, (None, 0.0))[0],
                canary_percent=canary.get(name, (None, 0.0))[1],
                shadow=shadow.get(name),
            )
            for name, uri in champions.items()
        ]


def load_repository(config: ServeConfig, settings: Settings) -> ModelRepository:
    """A repository with every champion, canary and shadow of ``config`` loaded."""
    from shipyard.client import Client
    from shipyard.serving.repository import ModelRepository

    repository = ModelRepository(Client(settings))
    for rollout in config.rollouts():
        repository.load(rollout.champion)
        for extra in (rollout.canary, rollout.shadow):
            if extra:
                repository.load(extra, default=False)
    return repository


def build_app(
    config: ServeConfig,
    settings: Settings,
    repository: ModelRepository | None = None,
    **app_options: Any,
) -> FastAPI:
    """The model server app for ``config`` (loading the models unless given)."""
    from shipyard.serving.app import create_model_app

    repository = repository or load_repository(config, settings)
    app = create_model_app(
        repository,
        settings,
        options=config.serve_options(),
        rollouts=config.rollouts(),
        **app_options,
    )
    if config.grpc_port:
        _with_grpc(app, repository, config.grpc_port, settings)
    return app


def _with_grpc(app: FastAPI, repository: ModelRepository, port: int, settings: Settings) -> None:
    """Run the OIP gRPC server beside HTTP for the app's lifetime, with the same auth."""
    inner = app.router.lifespan_context
    server_state = app.state.model_server

    @asynccontextmanager
    async def lifespan(app_: Any) -> AsyncIterator[None]:
        from shipyard.serving.grpc_server import security_authorizer, serve_grpc

        security = server_state.security if app.state.auth else None
        authorize = security_authorizer(security, server_state.workspace) if security else None
        server = serve_grpc(
            repository,
            port,
            host=settings.host,
            authorize=authorize,
            allow_unauthenticated_network=settings.allow_unauthenticated_network,
        )
        try:
            async with inner(app_):
                yield
        finally:
            stop = getattr(server, "stop", None)
            if stop is not None:
                result = stop(5)
                wait = getattr(result, "wait", None)
                if callable(wait):
                    wait(5)

    app.router.lifespan_context = lifespan


def app_from_env() -> FastAPI:
    """The app factory each uvicorn worker calls: settings from SHIPYARD_*, what to
    serve from SHIPYARD_SERVE_CONFIG."""
    from shipyard.config import load_settings

    raw = json.loads(os.environ[CONFIG_ENV])
    return build_app(ServeConfig(**raw), load_settings())


def serve(
    config: ServeConfig,
    settings: Settings,
    *,
    workers: int = 1,
    log_level: str = "info",
    access_log: bool = False,
    timeout_graceful_shutdown: float | None = 30.0,
) -> None:
    """Serve ``config`` on ``settings.host:settings.port`` until interrupted (SIGTERM or
    Ctrl-C drain queued requests and publish the prediction log first).

    Raises:
        ConfigError: auth is off on a network address without
            ``allow_unauthenticated_network``.
        ModelNotFoundError / IntegrityError: a model URI does not resolve, or its files
            do not match their recorded hashes.
    """
    import uvicorn

    from shipyard.server.auth import check_exposure
    from shipyard.server.runner import HttpProtocol, export_settings
    from shipyard.store.db import dispose_all

    check_exposure(settings)
    options: dict[str, Any] = {
        "host": settings.host,
        "port": settings.port,
        "http": HttpProtocol,
        "ws": "none",
        "lifespan": "on",
        "log_level": log_level,
        "access_log": access_log,
        "timeout_graceful_shutdown": timeout_graceful_shutdown,
    }
    if workers <= 1:
        app = build_app(config, settings)
        uvicorn.run(app, **options)
        return
    # Fail here, not in every worker, when a model cannot be loaded.
    load_repository(config, settings)
    metrics_dir = tempfile.mkdtemp(prefix="shipyard-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    os.environ[CONFIG_ENV] = json.dumps(asdict(config))
    export_settings(settings)
    if settings.url:  # models come from a platform server: workers talk to it too
        os.environ["SHIPYARD_URL"] = settings.url
        if settings.token is not None:
            os.environ["SHIPYARD_TOKEN"] = settings.token.get_secret_value()
    dispose_all()
    try:
        uvicorn.run(
            "shipyard.serving.runner:app_from_env", factory=True, workers=workers, **options
        )
    finally:
        shutil.rmtree(metrics_dir, ignore_errors=True)
