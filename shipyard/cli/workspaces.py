"""``shipyard workspaces``: the isolation boundary of every resource."""

from __future__ import annotations

from typing import Annotated

import typer

from shipyard.cli._common import console, render_table

app = typer.Typer(no_args_is_help=True)


def _engine():  # type: ignore[no-untyped-def]
    from shipyard.config import load_settings
    from shipyard.errors import InvalidArgumentError
    from shipyard.store.db import engine_for

    settings = load_settings()
    if settings.is_remote:
        raise InvalidArgumentError(
            "Workspaces are managed on the platform server's host.",
            hint="Unset SHIPYARD_URL and point SHIPYARD_DB at the server's database.",
        )
    return engine_for(settings.db)


@app.command("list")
def list_workspaces() -> None:
    """List workspaces."""
    from shipyard.store.workspaces import list_workspaces as _list

    render_table("Workspaces", ("name",), ((name,) for name in _list(_engine())))


@app.command("create")
def create(
    name: Annotated[str, typer.Argument(help="Lowercase letters, digits, '-' and '_'.")],
    description: Annotated[str, typer.Option(help="Free text.")] = "",
) -> None:
    """Create a workspace."""
    from shipyard.store.workspaces import create_workspace

    create_workspace(_engine(), name, description)
    console.print(f"Created workspace [bold]{name}[/bold]")
