"""``shipyard runs``: list, show and compare runs."""

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
from shipyard.errors import ExperimentNotFoundError

app = typer.Typer(no_args_is_help=True)


@app.command("list")
def list_runs(
    experiment: Annotated[
        list[str] | None, typer.Option("--experiment", "-e", help="Experiment name(s).")
    ] = None,
    filter_string: Annotated[
        str, typer.Option("--filter", "-f", help="e.g. \"metrics.acc > 0.9 and params.lr = '0.1'\"")
    ] = "",
    order_by: Annotated[
        list[str] | None, typer.Option("--order-by", "-o", help="e.g. 'metrics.acc DESC'.")
    ] = None,
    max_results: Annotated[int, typer.Option("--max", min=1, max=50000)] = 50,
    workspace: WorkspaceOption = None,
) -> None:
    """List runs, newest first, optionally filtered and ordered."""
    client = make_client(workspace)
    if experiment:
        ids = []
        for name in experiment:
            found = client.tracking.get_experiment_by_name(name)
            if found is None:
                raise ExperimentNotFoundError(name, client.workspace)
            ids.append(found.experiment_id)
    else:
        ids = [e.experiment_id for e in client.tracking.list_experiments()]
    page = client.tracking.search_runs(
        ids, filter_string=filter_string, order_by=order_by or (), max_results=max_results
    )
    metric_keys = sorted({key for run in page for key in run.data.metrics})[:6]
    render_table(
        "Runs",
        ("run id", "name", "status", "started", *metric_keys),
        (
            (
                run.info.run_id,
                run.info.run_name,
                run.info.status,
                fmt_time(run.info.start_time),
                *(run.data.metrics.get(key) for key in metric_keys),
            )
            for run in page
        ),
    )


@app.command("show")
def show(run_id: str, workspace: WorkspaceOption = None) -> None:
    """Show one run: status, params, metrics, tags, datasets and artifacts."""
    client = make_client(workspace)
    run = client.tracking.get_run(run_id)
    info = run.info
    console.print(f"[bold]{info.run_name}[/bold] ({info.run_id})  status={info.status}")
    console.print(
        f"experiment={info.experiment_id}  started={fmt_time(info.start_time)}  "
        f"ended={fmt_time(info.end_time)}  parent={info.parent_run_id or '-'}"
    )
    console.print(f"artifacts: {info.artifact_uri}")
    render_mapping("Params", run.data.params)
    render_mapping("Metrics", run.data.metrics)
    render_mapping("Tags", run.data.tags)
    render_table(
        "Datasets",
        ("name", "digest", "rows", "context", "source"),
        (
            (i.dataset.name, i.dataset.digest[:16], i.dataset.num_rows, i.context, i.dataset.source)
            for i in run.inputs
        ),
    )
    render_table(
        "Artifacts",
        ("path", "size", "sha256"),
        ((a.path, a.size, a.sha256[:16]) for a in client.tracking.list_artifacts(run_id)),
    )


@app.command("compare")
def compare(
    run_ids: Annotated[list[str], typer.Argument(help="Two or more run ids.")],
    workspace: WorkspaceOption = None,
) -> None:
    """Compare params and metrics of runs side by side; differing rows are highlighted."""
    client = make_client(workspace)
    runs = [client.tracking.get_run(run_id) for run_id in run_ids]
    rows = []
    for kind in ("params", "metrics"):
        keys = sorted({key for run in runs for key in getattr(run.data, kind)})
        for key in keys:
            values = [getattr(run.data, kind).get(key) for run in runs]
            marker = "*" if len({repr(v) for v in values}) > 1 else ""
            rows.append((f"{marker}{kind}.{key}", *values))
    render_table("Comparison (* differs)", ("", *(run.info.run_name for run in runs)), rows)
