"""``shipyard models``: registered models, versions, aliases, gates and promotion history."""

from __future__ import annotations

from typing import Annotated

import typer

from shipyard.cli._common import (
    WorkspaceOption,
    console,
    fmt_time,
    make_client,
    render_mapping,
    render_table,
)

app = typer.Typer(no_args_is_help=True)


@app.command("list")
def list_models(workspace: WorkspaceOption = None) -> None:
    """List registered models with their latest version and aliases."""
    registry = make_client(workspace).registry
    render_table(
        "Models",
        ("name", "latest", "aliases", "updated"),
        (
            (
                m.name,
                m.latest_version,
                ", ".join(f"@{a}={v}" for a, v in sorted(m.aliases.items())),
                fmt_time(m.updated_at),
            )
            for m in registry.list_registered_models(max_results=1000)
        ),
    )


@app.command("show")
def show(name: str, workspace: WorkspaceOption = None) -> None:
    """Show a registered model: description, aliases, gates and tags."""
    model = make_client(workspace).registry.get_registered_model(name)
    console.print(f"[bold]{model.name}[/bold]  latest version: {model.latest_version or '-'}")
    if model.description:
        console.print(model.description)
    render_mapping("Aliases", {f"@{k}": v for k, v in model.aliases.items()})
    render_mapping("Gates", {f"@{k}": v for k, v in model.gates.items()})
    render_mapping("Tags", model.tags)


@app.command("versions")
def versions(name: str, workspace: WorkspaceOption = None) -> None:
    """List the versions of a model."""
    registry = make_client(workspace).registry
    render_table(
        f"Versions of {name}",
        ("version", "aliases", "flavor", "run", "created", "source"),
        (
            (
                v.version,
                ", ".join(f"@{a}" for a in v.aliases),
                v.flavor,
                v.run_id,
                fmt_time(v.created_at),
                v.source,
            )
            for v in registry.list_model_versions(name)
        ),
    )


@app.command("alias")
def alias(
    name: str,
    alias_name: Annotated[str, typer.Argument(metavar="ALIAS")],
    version: Annotated[int | None, typer.Argument(help="Version; omit with --delete.")] = None,
    delete: Annotated[bool, typer.Option("--delete", help="Remove the alias.")] = False,
    force: Annotated[bool, typer.Option("--force", help="Move past a failing gate.")] = False,
    workspace: WorkspaceOption = None,
) -> None:
    """Point an alias at a version (gates are evaluated), or remove it with --delete."""
    from shipyard.errors import InvalidArgumentError

    registry = make_client(workspace).registry
    if delete:
        registry.delete_alias(name, alias_name)
        console.print(f"Removed @{alias_name} from {name}")
        return
    if version is None:
        raise InvalidArgumentError("Give the version to point the alias at, or --delete.")
    change = registry.set_alias(name, alias_name, version, force=force)
    console.print(
        f"{name}@{alias_name}: {change.from_version or '-'} -> {change.to_version}"
        + (f"  ({change.reason})" if change.reason else "")
    )


@app.command("promote")
def promote(
    name: str,
    version: int,
    to: Annotated[str, typer.Option("--to", help="Alias to move, e.g. champion.")] = "champion",
    force: Annotated[bool, typer.Option("--force", help="Move past a failing gate.")] = False,
    workspace: WorkspaceOption = None,
) -> None:
    """Promote a version to an alias, evaluating the alias's gate."""
    alias(name, to, version, delete=False, force=force, workspace=workspace)


@app.command("gate")
def gate(
    name: str,
    alias_name: Annotated[str, typer.Argument(metavar="ALIAS")],
    expression: Annotated[
        str | None, typer.Argument(help="e.g. 'accuracy >= 0.85 and latency_p99_ms < 20'")
    ] = None,
    delete: Annotated[bool, typer.Option("--delete", help="Remove the gate.")] = False,
    workspace: WorkspaceOption = None,
) -> None:
    """Protect an alias with a gate over the version's metrics (or remove it)."""
    from shipyard.errors import InvalidArgumentError

    registry = make_client(workspace).registry
    if delete:
        registry.delete_gate(name, alias_name)
        console.print(f"Removed the gate of {name}@{alias_name}")
        return
    if not expression:
        raise InvalidArgumentError("Give the gate expression, or --delete.")
    registry.set_gate(name, alias_name, expression)
    console.print(f"{name}@{alias_name} is now gated by: {expression}")


@app.command("history")
def history(
    name: str,
    alias_name: Annotated[str | None, typer.Option("--alias", help="Only this alias.")] = None,
    workspace: WorkspaceOption = None,
) -> None:
    """Show every alias move: who, when, from which version to which."""
    registry = make_client(workspace).registry
    render_table(
        f"Alias history of {name}",
        ("when", "alias", "from", "to", "actor", "reason"),
        (
            (fmt_time(c.at), f"@{c.alias}", c.from_version, c.to_version, c.actor, c.reason)
            for c in registry.alias_history(name, alias_name)
        ),
    )
