"""``shipyard experiments``: create and list experiments."""

from __future__ import annotations

from typing import Annotated

import typer

from shipyard.cli._common import WorkspaceOption, console, fmt_time, make_client, render_table

app = typer.Typer(no_args_is_help=True)


@app.command("list")
def list_experiments(workspace: WorkspaceOption = None) -> None:
    """List the experiments of a workspace."""
    client = make_client(workspace)
    page = client.tracking.list_experiments()
    render_table(
        "Experiments",
        ("id", "name", "created", "artifact location"),
        ((e.experiment_id, e.name, fmt_time(e.created_at), e.artifact_location) for e in page),
    )


@app.command("create")
def create(
    name: Annotated[str, typer.Argument(help="Experiment name, unique in the workspace.")],
    description: Annotated[str, typer.Option(help="Free text.")] = "",
    workspace: WorkspaceOption = None,
) -> None:
    """Create an experiment."""
    experiment = make_client(workspace).tracking.create_experiment(name, description=description)
    console.print(f"Created experiment [bold]{experiment.name}[/bold] ({experiment.experiment_id})")
