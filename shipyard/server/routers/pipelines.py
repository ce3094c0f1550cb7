"""Pipelines routes of the platform server: start runs, manage schedules and triggers,
backfill a schedule, and receive monitoring alerts (continuous training).

The server imports pipelines by module name (``package.module:pipeline``) only: a request
never makes it execute a file path.
"""

from __future__ import annotations

import threading
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from shipyard.errors import InvalidArgumentError
from shipyard.server.deps import PermissionRoute, Platform, note_resource, platform, requires
from shipyard.server.deps import workspace as workspace_dep
from shipyard.server.schemas import ERROR_RESPONSES

__all__ = ["router"]

router = APIRouter(route_class=PermissionRoute, responses=ERROR_RESPONSES, tags=["pipelines"])

PlatformDep = Annotated[Platform, Depends(platform)]
Workspace = Annotated[str, Depends(workspace_dep)]
Read = [Depends(requires("pipelines", "read"))]
Write = [Depends(requires("pipelines", "write"))]
Delete = [Depends(requires("pipelines", "delete"))]
Run = [Depends(requires("pipelines", "run"))]

Name = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=r"^[^\x00]+$")]
Reference = Annotated[
    str,
    StringConstraints(min_length=3, max_length=512, pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$"),
]
Label = Annotated[str, StringConstraints(max_length=1024, pattern=r"^[^\x00]*$")]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RunCreate(_Body):
    pipeline: Reference = Field(description="package.module:pipeline the server imports")
    params: dict[str, Any] = Field(default_factory=dict)
    run_name: Annotated[str, StringConstraints(max_length=256, pattern=r"^[^\x00]*$")] = ""


class RunStarted(BaseModel):
    run_id: str


class ScheduleCreate(_Body):
    name: Name
    pipeline: Reference
    cron: Annotated[str, StringConstraints(min_length=1, max_length=128)]
    params: dict[str, Any] = Field(default_factory=dict)
    start_at: datetime | None = None
    end_at: datetime | None = None
    catchup: bool = False
    max_active_runs: Annotated[int, Field(ge=1, le=1000)] = 1
    paused: bool = False


class ScheduleOut(BaseModel):
    schedule_id: str
    workspace: str
    name: str
    pipeline: str
    cron: str
    params: dict[str, Any]
    start_at: str | None
    end_at: str | None
    catchup: bool
    max_active_runs: int
    paused: bool
    next_fire_at: str | None


class ScheduleList(BaseModel):
    schedules: list[ScheduleOut]


class FireOut(BaseModel):
    scheduled_at: str
    run_id: str
    source: str


class FireList(BaseModel):
    fires: list[FireOut]


class BackfillCreate(_Body):
    start: datetime
    end: datetime


class BackfillStarted(BaseModel):
    schedule: str
    intervals: int


class TriggerCreate(_Body):
    name: Name
    pipeline: Reference
    kind: Literal["data", "alert", "registry"]
    spec: dict[str, Any] = Field(default_factory=dict)
    params: dict[str, Any] = Field(default_factory=dict)
    paused: bool = False
    fire_existing: bool = False


class TriggerOut(BaseModel):
    trigger_id: str
    workspace: str
    name: str
    pipeline: str
    kind: str
    spec: dict[str, Any]
    params: dict[str, Any]
    paused: bool


class TriggerList(BaseModel):
    triggers: list[TriggerOut]


class AlertFired(_Body):
    alert: Annotated[str, StringConstraints(min_length=1, max_length=256, pattern=r"^[^\x00]+$")]
    labels: dict[Label, Label] = Field(default_factory=dict)


class RunsStarted(BaseModel):
    run_ids: list[str]


def _check_pipeline(reference: str) -> None:
    from shipyard.pipelines.compile.reference import load_pipeline

    load_pipeline(reference)


def _schedules(state: Platform, ws: str) -> Any:
    from shipyard.pipelines.schedules import ScheduleStore

    return ScheduleStore(state.engine, ws)


def _triggers(state: Platform, ws: str) -> Any:
    from shipyard.pipelines.triggers import TriggerStore

    return TriggerStore(state.engine, ws)


# -- runs ------------------------------------------------------------------------------------


@router.post("/pipelines/runs", status_code=201, response_model=RunStarted, dependencies=Run)
def start_pipeline_run(body: RunCreate, state: PlatformDep, ws: Workspace, request: Request) -> Any:
    """Start a run with the local executor in the server; it goes on in the background."""
    from shipyard.pipelines.schedules import start_run

    _check_pipeline(body.pipeline)
    run_id = start_run(state.settings, body.pipeline, body.params, ws, None, body.run_name)
    note_resource(request, run_id)
    return {"run_id": run_id}


# -- schedules -------------------------------------------------------------------------------


@router.post(
    "/pipelines/schedules", status_code=201, response_model=ScheduleOut, dependencies=Write
)
def create_schedule(
    body: ScheduleCreate, state: PlatformDep, ws: Workspace, request: Request
) -> Any:
    """Create a cron schedule (UTC); the server's scheduler fires it."""
    _check_pipeline(body.pipeline)
    made = _schedules(state, ws).create(
        body.name,
        body.pipeline,
        body.cron,
        params=body.params,
        start_at=body.start_at,
        end_at=body.end_at,
        catchup=body.catchup,
        max_active_runs=body.max_active_runs,
        paused=body.paused,
    )
    note_resource(request, made.name)
    return made.to_dict()


@router.get("/pipelines/schedules", response_model=ScheduleList, dependencies=Read)
def list_schedules(state: PlatformDep, ws: Workspace) -> Any:
    return {"schedules": [s.to_dict() for s in _schedules(state, ws).list()]}


@router.get("/pipelines/schedules/{name}", response_model=ScheduleOut, dependencies=Read)
def get_schedule(name: Name, state: PlatformDep, ws: Workspace) -> Any:
    return _schedules(state, ws).get(name).to_dict()


@router.get("/pipelines/schedules/{name}/fires", response_model=FireList, dependencies=Read)
def list_schedule_fires(name: Name, state: PlatformDep, ws: Workspace) -> Any:
    """Every time the schedule fired (or was backfilled), with the run it started."""
    return {"fires": _schedules(state, ws).fires(name)}


@router.post("/pipelines/schedules/{name}/pause", response_model=ScheduleOut, dependencies=Write)
def pause_schedule(name: Name, state: PlatformDep, ws: Workspace) -> Any:
    return _schedules(state, ws).set_paused(name, True).to_dict()


@router.post("/pipelines/schedules/{name}/resume", response_model=ScheduleOut, dependencies=Write)
def resume_schedule(name: Name, state: PlatformDep, ws: Workspace) -> Any:
    return _schedules(state, ws).set_paused(name, False).to_dict()


@router.delete("/pipelines/schedules/{name}", status_code=204, dependencies=Delete)
def delete_schedule(name: Name, state: PlatformDep, ws: Workspace) -> None:
    _schedules(state, ws).delete(name)


@router.post(
    "/pipelines/schedules/{name}/backfill",
    status_code=202,
    response_model=BackfillStarted,
    dependencies=Run,
)
def backfill_schedule(name: Name, body: BackfillCreate, state: PlatformDep, ws: Workspace) -> Any:
    """Start one run per fire time in [start, end] in the background, at most the
    schedule's max_active_runs at once; times that already fired are skipped."""
    from shipyard.pipelines.scheduler import backfill
    from shipyard.pipelines.schedules import as_utc, fire_times

    schedule = _schedules(state, ws).get(name)
    start, end = as_utc(body.start), as_utc(body.end)
    if end < start:
        raise InvalidArgumentError("The backfill's end is before its start.")
    intervals = len(fire_times(schedule.cron, start, end))
    thread = threading.Thread(
        target=backfill,
        args=(state.settings, name, start, end),
        kwargs={"workspace": ws},
        name=f"backfill-{name}",
        daemon=True,
    )
    thread.start()
    return {"schedule": name, "intervals": intervals}


# -- triggers --------------------------------------------------------------------------------


@router.post("/pipelines/triggers", status_code=201, response_model=TriggerOut, dependencies=Write)
def create_trigger(body: TriggerCreate, state: PlatformDep, ws: Workspace, request: Request) -> Any:
    """Create a data, alert or registry trigger (see ``shipyard.pipelines.triggers``)."""
    _check_pipeline(body.pipeline)
    made = _triggers(state, ws).create(
        body.name,
        body.pipeline,
        body.kind,
        body.spec,
        params=body.params,
        paused=body.paused,
        fire_existing=body.fire_existing,
    )
    note_resource(request, made.name)
    return made.to_dict()


@router.get("/pipelines/triggers", response_model=TriggerList, dependencies=Read)
def list_triggers(state: PlatformDep, ws: Workspace) -> Any:
    return {"triggers": [t.to_dict() for t in _triggers(state, ws).list()]}


@router.get("/pipelines/triggers/{name}", response_model=TriggerOut, dependencies=Read)
def get_trigger(name: Name, state: PlatformDep, ws: Workspace) -> Any:
    return _triggers(state, ws).get(name).to_dict()


@router.post("/pipelines/triggers/{name}/pause", response_model=TriggerOut, dependencies=Write)
def pause_trigger(name: Name, state: PlatformDep, ws: Workspace) -> Any:
    return _triggers(state, ws).set_paused(name, True).to_dict()


@router.post("/pipelines/triggers/{name}/resume", response_model=TriggerOut, dependencies=Write)
def resume_trigger(name: Name, state: PlatformDep, ws: Workspace) -> Any:
    return _triggers(state, ws).set_paused(name, False).to_dict()


@router.delete("/pipelines/triggers/{name}", status_code=204, dependencies=Delete)
def delete_trigger(name: Name, state: PlatformDep, ws: Workspace) -> None:
    _triggers(state, ws).delete(name)


@router.post("/pipelines/alerts", response_model=RunsStarted, dependencies=Run)
def receive_alert(body: AlertFired, state: PlatformDep, ws: Workspace) -> Any:
    """An alert fired (from the monitoring evaluator or an Alertmanager webhook): start the
    matching alert triggers' pipelines."""
    from shipyard.pipelines.triggers import fire_alert

    started = fire_alert(body.alert, body.labels, settings=state.settings, workspace=ws)
    return {"run_ids": started}
