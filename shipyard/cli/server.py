"""``shipyard server``: run the platform server."""

from __future__ import annotations

from typing import Annotated

import typer


def serve(
    host: Annotated[str | None, typer.Option(help="Bind address (SHIPYARD_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (SHIPYARD_PORT).")] = None,
    workers: Annotated[int, typer.Option(min=1, max=64, help="Worker processes.")] = 1,
    db: Annotated[str | None, typer.Option(help="Metadata store URL (SHIPYARD_DB).")] = None,
    artifacts: Annotated[
        str | None, typer.Option(help="Artifact root URL (SHIPYARD_ARTIFACTS).")
    ] = None,
    scheduler: Annotated[
        bool,
        typer.Option("--scheduler/--no-scheduler", help="Run pipeline schedules and triggers."),
    ] = True,
) -> None:
    """Run the platform server: REST API under /api/v1, OpenAPI at /openapi.json."""
    from shipyard.config import load_settings
    from shipyard.server.runner import serve as run_server

    overrides = {
        key: value
        for key, value in {"host": host, "port": port, "db": db, "artifacts": artifacts}.items()
        if value is not None
    }
    overrides["scheduler"] = scheduler
    run_server(load_settings(**overrides), workers=workers)
