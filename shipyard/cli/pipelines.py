"""``shipyard pipelines``: run, list, show, logs, resume, cancel."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any

import typer

from shipyard.cli._common import WorkspaceOption, console, fmt_time, render_table

if TYPE_CHECKING:
    from shipyard.pipelines.dsl import Pipeline
    from shipyard.pipelines.executor import LocalExecutor
    from shipyard.pipelines.state import PipelineRun
    from shipyard.pipelines.worker import PipelineRef

app = typer.Typer(no_args_is_help=True)

_STATE_STYLE = {
    "succeeded": "green",
    "cached": "cyan",
    "skipped": "dim",
    "failed": "red",
    "upstream_failed": "red",
    "cancelled": "yellow",
    "running": "blue",
    "retrying": "yellow",
}


def _ref(target: str) -> PipelineRef:
    """``module:attr`` or ``path/to/file.py:attr`` -> a reference importable from here."""
    import os
    import sys

    from shipyard.errors import InvalidArgumentError
    from shipyard.pipelines.worker import PipelineRef

    module, sep, attr = target.rpartition(":")
    if not sep or not module or not attr:
        raise InvalidArgumentError(
            f"'{target}' does not name a pipeline.",
            hint="Use MODULE:PIPELINE, e.g. `shipyard pipelines run my_project.flows:training` "
            "or `shipyard pipelines run flows.py:training`.",
        )
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    if module.endswith(".py"):
        path = os.path.abspath(module)
        sys.path.insert(0, os.path.dirname(path))
        return PipelineRef(os.path.splitext(os.path.basename(path))[0], attr, path)
    return PipelineRef(module, attr)


def _parse_param(pipeline: Pipeline, text: str) -> tuple[str, Any]:
    from shipyard.errors import InvalidArgumentError

    key, sep, raw = text.partition("=")
    if not sep:
        raise InvalidArgumentError(
            f"Parameter '{text}' is not KEY=VALUE.", hint="Pass e.g. `-p threshold=0.9`."
        )
    port = pipeline.graph.parameter(key)
    if port is not None and port.type == "str":
        return key, raw
    try:
        return key, json.loads(raw)
    except ValueError:
        return key, raw


def _duration(ms: int | None) -> str:
    if ms is None:
        return "-"
    return f"{ms} ms" if ms < 10_000 else f"{ms / 1000:.1f} s"


def _compact(values: dict[str, Any]) -> str:
    parts = []
    for key, value in sorted(values.items()):
        text = f"{value:.4g}" if isinstance(value, float) else json.dumps(value)
        parts.append(f"{key}={text[:40]}")
    return ", ".join(parts)


def _print_run(run: PipelineRun) -> None:
    style = _STATE_STYLE.get(run.status, "")
    console.print(
        f"Run [bold]{run.run_id}[/bold] of [bold]{run.pipeline}[/bold]: "
        f"[{style}]{run.status}[/{style}]"
        if style
        else f"Run {run.run_id}: {run.status}"
    )
    if run.params:
        console.print("params: " + json.dumps(run.params, sort_keys=True))
    rows = []
    for step in run.steps:
        outputs = step.outputs.get("params", {})
        metrics = {
            k: v
            for ref in step.outputs.get("artifacts", {}).values()
            for k, v in ref.get("metrics", {}).items()
        }
        shown = {**outputs, **metrics}
        rows.append(
            (
                step.key,
                step.state,
                step.attempts,
                _duration(step.duration_ms),
                "yes" if step.cached else "",
                _compact(shown),
                step.error.splitlines()[0][:100] if step.error else "",
            )
        )
    render_table(
        "Steps", ("step", "state", "attempts", "duration", "cached", "outputs", "error"), rows
    )
    for step in run.steps:
        report = step.details.get("validation")
        if report:
            console.print(
                f"[bold]{step.key}[/bold]: {report['evaluated'] - report['failed']} of "
                f"{report['evaluated']} expectations passed on {report['row_count']} rows"
            )
            for result in report["results"]:
                mark = "[green]ok[/green]" if result["success"] else "[red]FAILED[/red]"
                detail = "" if result["success"] else f" ({result['detail']})"
                console.print(f"  {mark} {result['expectation']}{detail}")
    if run.error:
        console.print(f"[red]{run.error}[/red]")
    if run.status in ("failed", "cancelled"):
        console.print(f"Resume with: shipyard pipelines resume {run.run_id}")


def _exit_for(run: PipelineRun) -> None:
    if run.status != "succeeded":
        raise SystemExit(1)  # not typer.Exit: main() runs click with standalone_mode off


@app.command("run")
def run(
    target: Annotated[str, typer.Argument(help="MODULE:PIPELINE or FILE.py:PIPELINE")],
    param: Annotated[
        list[str] | None, typer.Option("--param", "-p", help="KEY=VALUE (JSON or text)")
    ] = None,
    workers: Annotated[
        int | None, typer.Option("--workers", help="Steps running at once (default: CPUs)")
    ] = None,
    name: Annotated[str | None, typer.Option("--name", help="Run name")] = None,
    workspace: WorkspaceOption = None,
) -> None:
    """Run a pipeline locally, each step in its own process; prints the steps at the end."""
    from shipyard.pipelines.worker import get_pool, load_pipeline

    ref = _ref(target)
    get_pool(ref)  # the step worker imports the module while this process does the same
    pipeline = load_pipeline(ref)

    from shipyard.pipelines.executor import LocalExecutor

    params = dict(_parse_param(pipeline, p) for p in param or [])
    executor = LocalExecutor(pipeline, workspace=workspace, max_workers=workers, ref=ref)
    run_id = executor.start(params, run_name=name)
    console.print(f"Started run {run_id}")
    result = _follow(executor, run_id, lambda: executor.execute(run_id))
    _print_run(result)
    _exit_for(result)


def _follow(executor: LocalExecutor, run_id: str, work: Callable[[], Any]) -> PipelineRun:
    """Run ``work`` (the executor) in a thread while showing progress; Ctrl-C cancels the
    run cleanly: running steps are stopped and exit handlers still run."""
    import threading

    from shipyard.pipelines.executor import cancel

    failure: list[BaseException] = []

    def target() -> None:
        try:
            work()
        except BaseException as exc:
            failure.append(exc)

    thread = threading.Thread(target=target, name=f"pipeline-run-{run_id[:8]}")
    thread.start()
    cancelled = False
    with console.status(f"Running {run_id}") as status:
        while thread.is_alive():
            try:
                thread.join(0.25)
                run = executor.state.get_run(run_id)
                done = sum(s.state not in ("pending", "running", "retrying") for s in run.steps)
                running = ", ".join(s.key for s in run.steps if s.state == "running")
                status.update(
                    f"{done}/{len(run.steps)} steps finished"
                    + (f"; running: {running}" if running else "")
                )
            except KeyboardInterrupt:
                if cancelled:
                    raise
                cancelled = True
                console.print("Cancelling: stopping running steps, running exit handlers...")
                cancel(run_id, settings=executor.settings, workspace=executor.workspace)
    if failure:
        raise failure[0]
    return executor.state.get_run(run_id)


@app.command("list")
def list_(
    pipeline: Annotated[str | None, typer.Option("--pipeline", help="Only this pipeline")] = None,
    status: Annotated[str | None, typer.Option("--status", help="Only runs in this state")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1)] = 50,
    workspace: WorkspaceOption = None,
) -> None:
    """Pipeline runs, newest first."""
    from shipyard.pipelines.executor import list_runs

    runs = list_runs(pipeline=pipeline, status=status, limit=limit, workspace=workspace)
    render_table(
        "Pipeline runs",
        ("run_id", "pipeline", "status", "name", "created", "ended"),
        [
            (
                r.run_id,
                r.pipeline,
                r.status,
                r.run_name,
                fmt_time(r.created_at),
                fmt_time(r.ended_at),
            )
            for r in runs
        ],
    )


@app.command("show")
def show(run_id: str, workspace: WorkspaceOption = None) -> None:
    """A run's steps: state, attempts, duration, cached or not, outputs, errors, and the
    results of data validation steps."""
    from shipyard.pipelines.executor import get_run

    _print_run(get_run(run_id, workspace=workspace))


@app.command("logs")
def logs(
    run_id: str,
    step: Annotated[
        str | None, typer.Argument(help="Step (e.g. train or train[2]); all if omitted")
    ] = None,
    workspace: WorkspaceOption = None,
) -> None:
    """Print what steps wrote to stdout and stderr, attempt by attempt."""
    from shipyard.config import load_settings
    from shipyard.errors import NotFoundError, did_you_mean
    from shipyard.pipelines.executor import get_run
    from shipyard.pipelines.logs import is_local, local_root, read_step_logs
    from shipyard.store.artifacts import ArtifactStore

    settings = load_settings()
    run = get_run(run_id, workspace=workspace)
    keys = [s.key for s in run.steps]
    if step is not None and step not in keys:
        raise NotFoundError(
            f"Run '{run_id}' has no step '{step}'." + did_you_mean(step, keys),
            hint=f"Its steps are: {', '.join(keys)}.",
        )
    local = is_local(settings.artifacts)
    root = local_root(settings.artifacts) if local else None
    store = None if local else ArtifactStore(settings.artifacts)
    for key in [step] if step else keys:
        for attempt, text in read_step_logs(root, run.workspace, run_id, key, store):
            console.rule(f"{key} (attempt {attempt})")
            console.out(text, end="" if text.endswith("\n") else "\n", highlight=False)


@app.command("resume")
def resume(
    run_id: str,
    workers: Annotated[int | None, typer.Option("--workers")] = None,
    workspace: WorkspaceOption = None,
) -> None:
    """Continue a failed, cancelled or killed run: finished steps are not run again."""
    from shipyard.pipelines.executor import prepare_resume

    executor = prepare_resume(run_id, workspace=workspace, max_workers=workers)
    result = _follow(executor, run_id, lambda: executor.execute(run_id, resuming=True))
    _print_run(result)
    _exit_for(result)


@app.command("cancel")
def cancel(run_id: str, workspace: WorkspaceOption = None) -> None:
    """Stop a run: running steps are killed, exit handlers still run."""
    from shipyard.pipelines.executor import cancel as cancel_run

    result = cancel_run(run_id, workspace=workspace)
    console.print(
        f"Run {run_id}: {result.status}"
        + (" (cancel requested)" if result.status == "running" else "")
    )


# Schedules, backfills and compilers live in their own module and add their commands here.
from shipyard.cli import pipeline_schedules  # noqa: E402

pipeline_schedules.register(app)
