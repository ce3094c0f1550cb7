"""``shipyard artifacts``: list and download a run's artifacts, with progress."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from shipyard.cli._common import WorkspaceOption, console, make_client, render_table

app = typer.Typer(no_args_is_help=True)


@app.command("ls")
def ls(
    run_id: str,
    path: Annotated[str, typer.Argument(help="Folder inside the run's artifacts.")] = "",
    workspace: WorkspaceOption = None,
) -> None:
    """List a run's artifacts under PATH."""
    items = make_client(workspace).artifacts.list_artifacts(run_id, path)
    render_table(
        f"Artifacts of {run_id}/{path}".rstrip("/"),
        ("path", "size", "sha256"),
        ((a.path + ("/" if a.is_dir else ""), a.size, a.sha256[:16]) for a in items),
    )


def _walk(client, run_id: str, path: str) -> list:  # type: ignore[no-untyped-def]
    files = []
    for item in client.artifacts.list_artifacts(run_id, path):
        files.extend(_walk(client, run_id, item.path) if item.is_dir else [item])
    return files


@app.command("get")
def get(
    run_id: str,
    path: Annotated[str, typer.Argument(help="File or folder; empty for everything.")] = "",
    dest: Annotated[Path, typer.Option("--dest", "-d", help="Where to write.")] = Path("."),
    workspace: WorkspaceOption = None,
) -> None:
    """Download artifacts, verifying each file's sha256."""
    from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

    client = make_client(workspace)
    listing = client.artifacts.list_artifacts(run_id, path)
    is_single_file = len(listing) == 1 and listing[0].path == path and not listing[0].is_dir
    files = listing if is_single_file else _walk(client, run_id, path)
    total = sum(f.size for f in files)
    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        console=console,
    ) as progress:
        task = progress.add_task(f"{run_id[:8]}/{path or '*'}", total=total)
        for item in files:
            client.artifacts.download_artifacts(run_id, item.path, dest)
            progress.advance(task, item.size)
    console.print(f"Downloaded {len(files)} file(s), {total} bytes, to {dest.resolve()}")
