"""``shipyard features`` commands for the online store: ``materialize``,
``materialize-incremental``, ``push`` and ``get-online``. ``register(app)`` adds them to
the ``features`` command group."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from shipyard.cli._common import WorkspaceOption
from shipyard.errors import InvalidArgumentError

if TYPE_CHECKING:
    from shipyard.features.store import FeatureStore

__all__ = ["parse_entity", "parse_time", "register"]

ViewsOption = Annotated[
    list[str] | None,
    typer.Option(
        "--view", "-v", help="A view to materialize (repeat); default: every online view."
    ),
]


def parse_time(text: str, name: str = "time") -> datetime:
    """``now``, epoch seconds or an ISO 8601 time (naive means UTC)."""
    value = text.strip()
    if value.lower() == "now":
        return datetime.now(UTC)
    try:
        return datetime.fromtimestamp(float(value), UTC)
    except ValueError:
        pass
    try:
        at = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidArgumentError(
            f"{name} {text!r} is not a time.",
            hint="Use an ISO 8601 time (2024-01-01T00:00:00Z), epoch seconds or 'now'.",
        ) from None
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def _scalar(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def parse_entity(text: str) -> dict[str, Any]:
    """``driver_id=1001,customer_id=7`` -> ``{"driver_id": 1001, "customer_id": 7}``."""
    row: dict[str, Any] = {}
    for pair in text.split(","):
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise InvalidArgumentError(
                f"Entity {text!r} is not key=value pairs.",
                hint="Write entities like --entity driver_id=1001 (comma between keys).",
            )
        row[key.strip()] = _scalar(value.strip())
    return row


def _store(workspace: str | None) -> FeatureStore:
    from shipyard.features.store import FeatureStore

    return FeatureStore(workspace=workspace)


def _progress_run(run: Any) -> dict[str, dict[str, Any]]:
    """Run ``run(progress_callback)`` under a Rich progress bar per view."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    from shipyard.cli._common import err_console

    with Progress(
        "[bold]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err_console,
        transient=False,
    ) as bar:
        tasks: dict[str, Any] = {}

        def report(view: str, done: int, total: int) -> None:
            if view not in tasks:
                tasks[view] = bar.add_task(view, total=max(total, 1))
            bar.update(tasks[view], completed=done if total else 1, total=max(total, 1))

        return run(report)  # type: ignore[no-any-return]


def _print_results(results: dict[str, dict[str, Any]]) -> None:
    from shipyard.cli._common import render_table

    render_table(
        "Materialized",
        ("view", "start", "end", "rows", "written"),
        [
            (name, r["start"].isoformat(), r["end"].isoformat(), r["rows"], r["written"])
            for name, r in results.items()
        ],
    )


def materialize_command(
    start: Annotated[str, typer.Argument(help="Start of the range (ISO 8601, epoch s).")],
    end: Annotated[str, typer.Argument(help="End of the range, excluded (or 'now').")],
    views: ViewsOption = None,
    workspace: WorkspaceOption = None,
) -> None:
    """Load the latest row per entity in [START, END) of each online view into the online
    store."""
    from shipyard.features.materialize import materialize

    store = _store(workspace)
    since, until = parse_time(start, "START"), parse_time(end, "END")
    _print_results(
        _progress_run(lambda report: materialize(store, views, since, until, progress=report))
    )


def materialize_incremental_command(
    end: Annotated[str, typer.Argument(help="End of the range, excluded (or 'now').")] = "now",
    views: ViewsOption = None,
    workspace: WorkspaceOption = None,
) -> None:
    """Materialize each online view from its watermark (last END) up to END."""
    from shipyard.features.materialize import materialize_incremental

    store = _store(workspace)
    until = parse_time(end, "END")
    _print_results(
        _progress_run(lambda report: materialize_incremental(store, until, views, progress=report))
    )


def _read_rows(path: Path) -> Any:
    suffix = path.suffix.lower()
    if not path.is_file():
        raise InvalidArgumentError(f"File {str(path)!r} does not exist.")
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        return pq.read_table(path)
    if suffix == ".csv":
        import pyarrow.csv as pacsv

        return pacsv.read_csv(path)
    if suffix in (".json", ".jsonl", ".ndjson"):
        text = path.read_text()
        if suffix == ".json":
            return json.loads(text)
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    raise InvalidArgumentError(
        f"Cannot read {path.name!r}: unknown file type.",
        hint="Push a .parquet, .csv, .json (rows or columns) or .jsonl file.",
    )


def push_command(
    push_source: Annotated[str, typer.Argument(help="Name of the push source.")],
    file: Annotated[Path, typer.Argument(help="Rows: .parquet, .csv, .json or .jsonl.")],
    to: Annotated[
        str, typer.Option("--to", help="online, offline or online_and_offline.")
    ] = "online_and_offline",
    workspace: WorkspaceOption = None,
) -> None:
    """Push the rows of FILE to the views that read PUSH_SOURCE."""
    from shipyard.cli._common import console
    from shipyard.features.push import push

    result = push(_store(workspace), push_source, _read_rows(file), to=to)  # type: ignore[arg-type]
    console.print(
        f"Pushed {result['rows']} rows to "
        + ", ".join(f"{v} ({n} written online)" for v, n in result["views"].items())
    )


def get_online_command(
    entity: Annotated[
        list[str],
        typer.Option("--entity", "-e", help="Entity row as key=value[,key=value] (repeat)."),
    ],
    feature: Annotated[
        list[str] | None, typer.Option("--feature", "-f", help="view:feature (repeat).")
    ] = None,
    service: Annotated[
        str | None, typer.Option("--service", "-s", help="Read a feature service.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    full_feature_names: Annotated[
        bool, typer.Option("--full-feature-names", help="Name outputs view__feature.")
    ] = False,
    workspace: WorkspaceOption = None,
) -> None:
    """Read features of entities from the online store, with each value's status."""
    from shipyard.cli._common import console, render_table
    from shipyard.features.online_read import get_online_features

    if bool(feature) == bool(service):
        raise InvalidArgumentError(
            "Name either --feature references or one --service.",
            hint="For example: -f driver_stats:conv_rate -e driver_id=1001",
        )
    rows = [parse_entity(e) for e in entity]
    wanted: Any = service if service else list(feature or [])
    response = get_online_features(
        _store(workspace), wanted, rows, full_feature_names=full_feature_names
    )
    if as_json:
        payload = {
            "values": response.to_dict(),
            "statuses": {k: [s.value for s in v] for k, v in response.statuses.items()},
        }
        console.print_json(json.dumps(payload, default=str))
        return
    columns = list(response.values)
    table_rows = []
    for i in range(len(rows)):
        table_rows.append(
            [
                f"{response.values[c][i]} ({response.statuses[c][i].value})"
                if c in response.statuses and response.statuses[c][i].value != "PRESENT"
                else response.values[c][i]
                for c in columns
            ]
        )
    render_table("Online features", columns, table_rows)


def register(app: typer.Typer) -> None:
    """Add the online-store commands to the ``shipyard features`` group."""
    app.command("materialize")(materialize_command)
    app.command("materialize-incremental")(materialize_incremental_command)
    app.command("push")(push_command)
    app.command("get-online")(get_online_command)
