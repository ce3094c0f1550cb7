"""``shipyard features``: plan, apply, list, describe, historical; plus the online
(materialize, push, read) and stream commands their modules register."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from shipyard.cli._common import WorkspaceOption, console, render_table
from shipyard.features import cli_online, cli_stream

app = typer.Typer(no_args_is_help=True)

RepoArgument = Annotated[
    Path, typer.Argument(help="Feature repo: a Python file or a folder of them.")
]

_STYLE = {"added": "green", "changed": "yellow", "removed": "red", "unchanged": "dim"}


def _store(workspace: str | None):  # type: ignore[no-untyped-def]
    from shipyard.features.store import FeatureStore

    return FeatureStore(workspace=workspace)


def _load(repo: Path) -> list[object]:
    """The repo's definitions; an empty repo is refused (applying it would remove all)."""
    from shipyard.errors import InvalidArgumentError
    from shipyard.features.repo import load_repo

    objects = load_repo(repo)
    if not objects:
        raise InvalidArgumentError(
            f"No feature definitions found in '{repo}'.",
            hint="Point at the folder or file that defines your entities and views.",
        )
    return objects


def _render_plan(plan) -> None:  # type: ignore[no-untyped-def]
    for item in plan.items:
        style = _STYLE[item.action]
        versions = ""
        if item.action == "changed":
            versions = f" v{item.version} -> v{item.new_version}"
        elif item.action == "added":
            versions = " -> v1"
        elif item.version is not None:
            versions = f" v{item.version}"
        label = item.kind.replace("_", " ")
        console.print(
            f"[{style}]{item.action:>9}[/{style}]  {label} [bold]{item.name}[/bold]{versions}"
        )
        for change in item.changes:
            console.print(f"             {change}", markup=False)
        for problem in item.problems:
            console.print(f"[red]             incompatible: {problem}[/red]")
    console.print(f"Plan: {plan.summary()}.")


@app.command("plan")
def plan(
    repo: RepoArgument = Path("."),
    workspace: WorkspaceOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the plan as JSON.")] = False,
) -> None:
    """Show what `apply` would change: added, changed, removed, unchanged definitions."""
    result = _store(workspace).plan(_load(repo), prune=True)
    if as_json:
        typer.echo(json.dumps(result.to_dict(), indent=2))
        return
    _render_plan(result)
    if result.problems:
        console.print("[red]Apply will refuse the incompatible changes above (use --force).[/red]")


@app.command("apply")
def apply(
    repo: RepoArgument = Path("."),
    workspace: WorkspaceOption = None,
    force: Annotated[
        bool, typer.Option("--force", help="Apply incompatible changes anyway.")
    ] = False,
) -> None:
    """Store the repo's definitions as new versions; remove those no longer in it."""
    result = _store(workspace).apply(_load(repo), prune=True, force=force)
    _render_plan(result)
    console.print("[green]Applied.[/green]" if result.has_changes else "Nothing to apply.")


@app.command("list")
def list_definitions(
    workspace: WorkspaceOption = None,
    kind: Annotated[
        str | None,
        typer.Option(help="entity, feature_view, on_demand_feature_view, feature_service, ..."),
    ] = None,
) -> None:
    """List registered definitions with their versions."""
    rows = []
    for item in _store(workspace).registry.list(kind):
        spec = item.spec
        detail = ""
        if item.kind == "feature_view":
            ttl = spec.get("ttl_seconds")
            names = [f["name"] for f in spec["schema"]]
            detail = f"{len(names)} fields, ttl {ttl:g}s" if ttl else f"{len(names)} fields"
        elif item.kind == "entity":
            detail = "join keys " + ", ".join(spec["join_keys"])
        elif item.kind == "feature_service":
            detail = ", ".join(i["view"] for i in spec["features"])
        rows.append((item.kind, item.name, item.version, detail))
    render_table("Feature definitions", ("kind", "name", "version", "detail"), rows)


@app.command("describe")
def describe(
    name: str,
    workspace: WorkspaceOption = None,
    kind: Annotated[str, typer.Option(help="Kind of the object.")] = "feature_view",
    version: Annotated[int | None, typer.Option(help="A past version.")] = None,
) -> None:
    """Print a definition's spec and its version history."""
    registry = _store(workspace).registry
    stored = registry.get(kind, name, version)
    typer.echo(json.dumps(stored.spec, indent=2, sort_keys=True))
    render_table(
        f"History of {name}",
        ("version", "action", "sha256", "applied by"),
        [
            (h["version"], h["action"], h["spec_sha256"][:12], h["applied_by"])
            for h in registry.history(kind, name)
        ],
    )


@app.command("historical")
def historical(
    entities: Annotated[
        Path, typer.Argument(help="Parquet or CSV file of entity rows with event_timestamp.")
    ],
    output: Annotated[Path, typer.Option("--output", "-o", help="Parquet file to write.")],
    features: Annotated[
        list[str] | None, typer.Option("--feature", "-f", help="view:feature (repeatable).")
    ] = None,
    service: Annotated[str | None, typer.Option(help="A feature service's name.")] = None,
    full_feature_names: Annotated[bool, typer.Option(help="Name columns view__feature.")] = False,
    run_id: Annotated[
        str | None, typer.Option(help="Log the file as this run's training dataset.")
    ] = None,
    workspace: WorkspaceOption = None,
) -> None:
    """Build a point-in-time correct training set and save it as Parquet (+ .sha256)."""
    from shipyard.errors import InvalidArgumentError

    if bool(features) == bool(service):
        raise InvalidArgumentError(
            "Give either --feature (one or more) or --service.",
            hint="e.g. -f driver_stats:conv_rate -f driver_stats:acc_rate",
        )
    store = _store(workspace)
    job = store.get_historical_features(
        str(entities), service or list(features or []), full_feature_names=full_feature_names
    )
    dataset = job.save_dataset(str(output), run_id=run_id)
    console.print(
        f"Wrote {dataset.num_rows} rows to {output} (sha256 {dataset.digest[:16]})"
        + (f", logged to run {run_id}" if run_id else "")
    )


cli_online.register(app)
cli_stream.register(app)
