"""What every command group shares: the console, the client, and table rendering."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from shipyard.client import Client

console = Console()
err_console = Console(stderr=True)

WorkspaceOption = Annotated[
    str | None,
    typer.Option("--workspace", "-w", help="Workspace (default: SHIPYARD_WORKSPACE or 'default')."),
]


def make_client(workspace: str | None = None) -> Client:
    """A Client from the environment, bound to ``workspace`` when given."""
    from shipyard.client import Client

    return Client(workspace=workspace)


def fmt_time(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value else "-"


def fmt_value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return "-" if value is None else str(value)


def render_table(title: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    """Print a Rich table, or a one-line note when there are no rows."""
    rows = list(rows)
    if not rows:
        console.print(f"[dim]No {title.lower()}.[/dim]")
        return
    table = Table(title=title, title_justify="left", header_style="bold")
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*(fmt_value(cell) for cell in row))
    console.print(table)


def render_mapping(title: str, mapping: dict[str, Any]) -> None:
    render_table(title, ("key", "value"), sorted(mapping.items()))
