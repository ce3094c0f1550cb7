"""``shipyard pipelines compile|schedule|backfill|trigger``: commands added to the pipelines
group (compilers, schedules and event triggers)."""

from __future__ import annotations

import json
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from shipyard.cli._common import WorkspaceOption, console, fmt_time, render_table

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from shipyard.config import Settings

ParamOption = Annotated[
    list[str] | None,
    typer.Option("--param", "-p", help="Pipeline parameter KEY=VALUE (JSON values), repeatable."),
]


def _settings_engine(workspace: str | None) -> tuple[Settings, Engine, str]:
    from shipyard.config import load_settings
    from shipyard.store.db import engine_for

    settings = load_settings()
    return settings, engine_for(settings.db), workspace or settings.workspace


def _reference(target: str) -> str:
    """Check the pipeline imports (from the working directory too) and return the
    reference to store: ``module:attr``, or an absolute ``file.py:attr``."""
    from shipyard.pipelines.compile.reference import load_pipeline

    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    module, _, attr = target.rpartition(":")
    if module.endswith(".py"):
        target = f"{Path(module).resolve()}:{attr}"
    load_pipeline(target)
    return target


def _params(values: list[str] | None) -> dict[str, Any]:
    from shipyard.errors import InvalidArgumentError

    params: dict[str, Any] = {}
    for text in values or ():
        key, sep, raw = text.partition("=")
        if not sep or not key:
            raise InvalidArgumentError(f"Parameter '{text}' is not KEY=VALUE.")
        try:
            params[key] = json.loads(raw)
        except ValueError:
            params[key] = raw
    return params


def _time(value: str | None, name: str) -> datetime | None:
    from shipyard.errors import InvalidArgumentError

    if not value:
        return None
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidArgumentError(
            f"--{name} {value!r} is not an ISO 8601 date or time.", hint="E.g. 2024-01-31."
        ) from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def compile_(
    target: Annotated[str, typer.Argument(help="MODULE:PIPELINE or FILE.py:PIPELINE")],
    to: Annotated[str, typer.Option("--target", "-t", help="kfp or airflow")] = "kfp",
    out: Annotated[Path | None, typer.Option("--out", "-o", help="File to write")] = None,
    image: Annotated[
        str, typer.Option(help="KFP: container image with Shipyard and the pipeline")
    ] = "python:3.11-slim",
    python: Annotated[
        str, typer.Option(help="Airflow: interpreter with Shipyard installed")
    ] = "python3",
    schedule: Annotated[str | None, typer.Option(help="Airflow: cron or preset")] = None,
    owner: Annotated[str, typer.Option(help="Airflow: DAG owner")] = "shipyard",
    tag: Annotated[list[str] | None, typer.Option(help="Airflow: DAG tag, repeatable")] = None,
    run_root: Annotated[
        str | None, typer.Option(help="Airflow: run folder root every worker shares")
    ] = None,
    env: Annotated[
        list[str] | None, typer.Option(help="Step environment KEY=VALUE, repeatable")
    ] = None,
) -> None:
    """Compile a pipeline to Kubeflow Pipelines v2 IR YAML or an Airflow DAG file."""
    from shipyard.errors import InvalidArgumentError
    from shipyard.pipelines.compile.reference import load_pipeline

    reference = _reference(target)
    pipeline = load_pipeline(reference)
    variables = {k: str(v) for k, v in _params(env).items()}
    if to == "kfp":
        from shipyard.pipelines.compile.kfp import kfp_yaml

        text = kfp_yaml(pipeline, image, reference=reference, env=variables)
    elif to == "airflow":
        from shipyard.pipelines.compile.airflow import DEFAULT_RUN_ROOT, compile_airflow

        text = compile_airflow(
            pipeline,
            reference=reference,
            python=python,
            schedule=schedule,
            owner=owner,
            tags=tag or ["shipyard"],
            run_root=run_root or DEFAULT_RUN_ROOT,
            env=variables,
        )
    else:
        raise InvalidArgumentError(f"Unknown target '{to}'.", hint="Use --target kfp or airflow.")
    if out is None:
        sys.stdout.write(text)
        return
    out.write_text(text)
    console.print(f"Wrote {to} definition of [bold]{pipeline.name}[/bold] to {out}")


schedule_app = typer.Typer(no_args_is_help=True, help="Run pipelines on a cron schedule.")
trigger_app = typer.Typer(no_args_is_help=True, help="Run pipelines on data, alerts, models.")


@schedule_app.command("create")
def schedule_create(
    name: str,
    target: Annotated[str, typer.Argument(help="MODULE:PIPELINE or FILE.py:PIPELINE")],
    cron: Annotated[str, typer.Option(help="Cron expression or preset (@daily, @hourly...)")],
    param: ParamOption = None,
    start: Annotated[str | None, typer.Option(help="First time to consider (UTC)")] = None,
    end: Annotated[str | None, typer.Option(help="Last time to fire (UTC)")] = None,
    catchup: Annotated[bool, typer.Option(help="Run times missed since --start")] = False,
    max_active_runs: Annotated[int, typer.Option(min=1)] = 1,
    paused: bool = False,
    workspace: WorkspaceOption = None,
) -> None:
    """Create a schedule; the platform server's scheduler fires it."""
    from shipyard.pipelines.schedules import ScheduleStore

    _, engine, ws = _settings_engine(workspace)
    made = ScheduleStore(engine, ws).create(
        name,
        _reference(target),
        cron,
        params=_params(param),
        start_at=_time(start, "start"),
        end_at=_time(end, "end"),
        catchup=catchup,
        max_active_runs=max_active_runs,
        paused=paused,
    )
    console.print(f"Schedule [bold]{made.name}[/bold]: next fire {fmt_time(made.next_fire_at)} UTC")


@schedule_app.command("list")
def schedule_list(workspace: WorkspaceOption = None) -> None:
    """List the workspace's schedules."""
    from shipyard.pipelines.schedules import ScheduleStore

    _, engine, ws = _settings_engine(workspace)
    rows = [
        (s.name, s.pipeline_ref, s.cron, fmt_time(s.next_fire_at), s.max_active_runs, s.paused)
        for s in ScheduleStore(engine, ws).list()
    ]
    render_table(
        "Schedules", ("name", "pipeline", "cron", "next fire", "max active", "paused"), rows
    )


@schedule_app.command("show")
def schedule_show(name: str, workspace: WorkspaceOption = None) -> None:
    """Show a schedule and every time it fired, with the run each fire started."""
    from shipyard.pipelines.schedules import ScheduleStore

    _, engine, ws = _settings_engine(workspace)
    store = ScheduleStore(engine, ws)
    for key, value in store.get(name).to_dict().items():
        console.print(f"{key}: {json.dumps(value) if isinstance(value, dict) else value}")
    rows = [(f["scheduled_at"], f["source"], f["run_id"] or "-") for f in store.fires(name)]
    render_table("Fires", ("scheduled time", "source", "run"), rows)


@schedule_app.command("pause")
def schedule_pause(name: str, workspace: WorkspaceOption = None) -> None:
    """Stop firing a schedule until it is resumed."""
    from shipyard.pipelines.schedules import ScheduleStore

    _, engine, ws = _settings_engine(workspace)
    ScheduleStore(engine, ws).set_paused(name, True)
    console.print(f"Paused schedule {name}")


@schedule_app.command("resume")
def schedule_resume(name: str, workspace: WorkspaceOption = None) -> None:
    """Fire a paused schedule again (without the missed times unless it catches up)."""
    from shipyard.pipelines.schedules import ScheduleStore

    _, engine, ws = _settings_engine(workspace)
    made = ScheduleStore(engine, ws).set_paused(name, False)
    console.print(f"Resumed schedule {name}: next fire {fmt_time(made.next_fire_at)} UTC")


@schedule_app.command("delete")
def schedule_delete(name: str, workspace: WorkspaceOption = None) -> None:
    """Delete a schedule and its fire history."""
    from shipyard.pipelines.schedules import ScheduleStore

    _, engine, ws = _settings_engine(workspace)
    ScheduleStore(engine, ws).delete(name)
    console.print(f"Deleted schedule {name}")


def backfill_(
    name: Annotated[str, typer.Argument(help="The schedule to backfill")],
    start: Annotated[str, typer.Option(help="First date or time (UTC), e.g. 2024-01-01")],
    end: Annotated[str, typer.Option(help="Last date or time (UTC), inclusive")],
    wait: Annotated[bool, typer.Option(help="Wait for the last runs to finish")] = True,
    workspace: WorkspaceOption = None,
) -> None:
    """Run a schedule once per fire time from START to END (both included), each with that
    SCHEDULED_TIME."""
    from shipyard.pipelines.scheduler import backfill

    settings, _, ws = _settings_engine(workspace)
    begin, finish = _time(start, "start"), _time(end, "end")
    assert begin is not None and finish is not None

    def started(at: datetime, run_id: str) -> None:
        console.print(f"{at.isoformat()}  run {run_id}")

    runs = backfill(settings, name, begin, finish, workspace=ws, wait=wait, on_start=started)
    console.print(f"Backfilled {len(runs)} run(s) of schedule {name}")


@trigger_app.command("create")
def trigger_create(
    name: str,
    target: Annotated[str, typer.Argument(help="MODULE:PIPELINE or FILE.py:PIPELINE")],
    on: Annotated[str, typer.Option("--on", help="data, alert or registry")],
    path: Annotated[str | None, typer.Option(help="data: folder or glob to watch")] = None,
    alert: Annotated[str | None, typer.Option(help="alert: alert name or *")] = None,
    label: Annotated[
        list[str] | None, typer.Option(help="alert: label KEY=VALUE it must have")
    ] = None,
    model: Annotated[str | None, typer.Option(help="registry: model name or *")] = None,
    event: Annotated[str, typer.Option(help="registry: event type")] = "model_version_created",
    fire_existing: Annotated[
        bool, typer.Option(help="data: also fire for files there now")
    ] = False,
    param: ParamOption = None,
    workspace: WorkspaceOption = None,
) -> None:
    """Create a trigger; params may quote event fields, e.g. -p 'data_path={path}'."""
    from shipyard.pipelines.triggers import TriggerStore

    spec: dict[str, Any] = {}
    if on == "data":
        spec = {"path": path}
    elif on == "alert":
        spec = {"alert": alert or "*", "labels": {k: str(v) for k, v in _params(label).items()}}
    elif on == "registry":
        spec = {"event": event, "model": model or "*"}
    _, engine, ws = _settings_engine(workspace)
    made = TriggerStore(engine, ws).create(
        name, _reference(target), on, spec, params=_params(param), fire_existing=fire_existing
    )
    console.print(f"Trigger [bold]{made.name}[/bold] on {made.kind}: {json.dumps(made.spec)}")


@trigger_app.command("list")
def trigger_list(workspace: WorkspaceOption = None) -> None:
    """List the workspace's triggers."""
    from shipyard.pipelines.triggers import TriggerStore

    _, engine, ws = _settings_engine(workspace)
    rows = [
        (t.name, t.kind, t.pipeline_ref, json.dumps(t.spec), t.paused)
        for t in TriggerStore(engine, ws).list()
    ]
    render_table("Triggers", ("name", "kind", "pipeline", "spec", "paused"), rows)


@trigger_app.command("show")
def trigger_show(name: str, workspace: WorkspaceOption = None) -> None:
    """Show a trigger and the events it started runs for."""
    from shipyard.pipelines.triggers import TriggerStore

    _, engine, ws = _settings_engine(workspace)
    store = TriggerStore(engine, ws)
    for key, value in store.get(name).to_dict().items():
        console.print(f"{key}: {json.dumps(value) if isinstance(value, dict) else value}")
    rows = [(json.dumps(f["detail"]), f["run_id"] or "-") for f in store.fires(name)]
    render_table("Fires", ("event", "run"), rows)


@trigger_app.command("pause")
def trigger_pause(name: str, workspace: WorkspaceOption = None) -> None:
    """Stop acting on a trigger's events until it is resumed."""
    from shipyard.pipelines.triggers import TriggerStore

    _, engine, ws = _settings_engine(workspace)
    TriggerStore(engine, ws).set_paused(name, True)
    console.print(f"Paused trigger {name}")


@trigger_app.command("resume")
def trigger_resume(name: str, workspace: WorkspaceOption = None) -> None:
    """Act on a paused trigger's events again."""
    from shipyard.pipelines.triggers import TriggerStore

    _, engine, ws = _settings_engine(workspace)
    TriggerStore(engine, ws).set_paused(name, False)
    console.print(f"Resumed trigger {name}")


@trigger_app.command("delete")
def trigger_delete(name: str, workspace: WorkspaceOption = None) -> None:
    """Delete a trigger and what it has seen."""
    from shipyard.pipelines.triggers import TriggerStore

    _, engine, ws = _settings_engine(workspace)
    TriggerStore(engine, ws).delete(name)
    console.print(f"Deleted trigger {name}")


def register(app: typer.Typer) -> None:
    """Add this module's commands to the ``pipelines`` group."""
    app.command("compile")(compile_)
    app.command("backfill")(backfill_)
    app.add_typer(schedule_app, name="schedule")
    app.add_typer(trigger_app, name="trigger")
