"""Tracking routes: experiments, runs, metrics, params, tags, dataset inputs and search.

Handlers are plain ``def`` (run in the threadpool); each is one call to the workspace's
TrackingStore, which commits before the handler returns, so a 2xx means the write is
durable.
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import unquote

from fastapi import APIRouter, Depends, Query, Request

from shipyard.errors import ExperimentNotFoundError, InvalidArgumentError
from shipyard.server.deps import (
    PermissionRoute,
    Platform,
    note_resource,
    platform,
    principal_of,
    requires,
    tracking_store,
)
from shipyard.server.schemas import (
    ERROR_RESPONSES,
    MAX_BATCH_METRICS,
    MAX_BATCH_PARAMS,
    MAX_BATCH_TAGS,
    ExperimentCreate,
    ExperimentList,
    ExperimentOut,
    LogBatch,
    LogInputs,
    MetricHistory,
    RunCreate,
    RunList,
    RunOut,
    RunUpdate,
    SearchRuns,
    TagValueBody,
)
from shipyard.store.db import now_ms
from shipyard.tracking.entities import Dataset, DatasetInput, Metric, Param
from shipyard.tracking.store import TrackingStore

__all__ = ["router"]

router = APIRouter(route_class=PermissionRoute, responses=ERROR_RESPONSES, tags=["tracking"])

Store = Annotated[TrackingStore, Depends(tracking_store)]
PlatformDep = Annotated[Platform, Depends(platform)]
ReadExperiments = [Depends(requires("experiments", "read"))]
WriteExperiments = [Depends(requires("experiments", "write"))]
DeleteExperiments = [Depends(requires("experiments", "delete"))]
ReadRuns = [Depends(requires("runs", "read"))]
WriteRuns = [Depends(requires("runs", "write"))]
DeleteRuns = [Depends(requires("runs", "delete"))]


def check_artifact_location(location: str, roots: list[str], workspace: str) -> None:
    """An explicit artifact_location inside the server's artifact root must lie in the
    workspace's own folder, so one workspace cannot write into another's artifacts.

    Raises:
        InvalidArgumentError: it points elsewhere under the root, or uses ``..``.
    """
    for root in roots:
        root = root.rstrip("/")
        if location != root and not location.startswith(f"{root}/"):
            continue
        rest = location[len(root) + 1 :]
        if root.startswith("file:"):
            rest = unquote(rest)
        parts = rest.split("/")
        if parts[0] != workspace or any(p in ("..", ".") for p in parts):
            raise InvalidArgumentError(
                f"artifact_location {location!r} is inside this server's artifact root but "
                f"outside workspace '{workspace}'s folder.",
                hint=f"Leave it out (the default is {root}/{workspace}/<experiment_id>), or "
                f"choose a location under {root}/{workspace}/.",
            )


# -- experiments ----------------------------------------------------------------------------


@router.post(
    "/experiments", status_code=201, response_model=ExperimentOut, dependencies=WriteExperiments
)
def create_experiment(
    body: ExperimentCreate, store: Store, state: PlatformDep, request: Request
) -> Any:
    """Create an experiment; 409 if the name is taken in this workspace."""
    if body.artifact_location:
        roots = [state.settings.artifacts, state.artifacts.root_url]
        check_artifact_location(body.artifact_location, roots, store.workspace)
    experiment = store.create_experiment(
        body.name,
        artifact_location=body.artifact_location,
        description=body.description,
        tags=body.tags,
    )
    note_resource(request, experiment.experiment_id)
    return experiment


@router.get("/experiments", response_model=ExperimentList, dependencies=ReadExperiments)
def list_experiments(
    store: Store,
    max_results: Annotated[int, Query(ge=-(2**63), le=2**63 - 1)] = 1000,
    page_token: str | None = None,
) -> Any:
    """Experiments of the workspace, one page at a time."""
    page = store.list_experiments(max_results=max_results, page_token=page_token)
    return {"experiments": page.items, "next_page_token": page.next_page_token}


@router.get(
    "/experiments/by-name/{name}", response_model=ExperimentOut, dependencies=ReadExperiments
)
def get_experiment_by_name(name: str, store: Store) -> Any:
    """The experiment called ``name``; 404 when there is none."""
    experiment = store.get_experiment_by_name(name)
    if experiment is None:
        raise ExperimentNotFoundError(name, store.workspace)
    return experiment


@router.get(
    "/experiments/{experiment_id}", response_model=ExperimentOut, dependencies=ReadExperiments
)
def get_experiment(experiment_id: str, store: Store) -> Any:
    return store.get_experiment(experiment_id)


@router.delete("/experiments/{experiment_id}", status_code=204, dependencies=DeleteExperiments)
def delete_experiment(experiment_id: str, store: Store) -> None:
    """Mark the experiment (and its runs) deleted."""
    store.delete_experiment(experiment_id)


@router.put(
    "/experiments/{experiment_id}/tags/{key}", status_code=204, dependencies=WriteExperiments
)
def set_experiment_tag(experiment_id: str, key: str, body: TagValueBody, store: Store) -> None:
    store.set_experiment_tag(experiment_id, key, body.value)


# -- runs -----------------------------------------------------------------------------------


@router.post("/runs", status_code=201, response_model=RunOut, dependencies=WriteRuns)
def create_run(body: RunCreate, store: Store, request: Request) -> Any:
    """Start a run (status RUNNING) in an experiment; with auth on, its ``user`` is the
    caller, whatever the body says."""
    caller = principal_of(request)
    run = store.create_run(
        body.experiment_id,
        run_name=body.run_name,
        parent_run_id=body.parent_run_id,
        tags=body.tags,
        user=caller.name if caller is not None else body.user,
        start_time=body.start_time,
    )
    note_resource(request, run.info.run_id)
    return run


@router.post("/runs/search", response_model=RunList, dependencies=ReadRuns)
def search_runs(body: SearchRuns, store: Store) -> Any:
    """Runs matching a filter such as ``metrics.acc > 0.9 and params.lr = '0.1'``."""
    page = store.search_runs(
        body.experiment_ids,
        filter_string=body.filter,
        order_by=body.order_by,
        max_results=body.max_results,
        page_token=body.page_token,
        include_deleted=body.include_deleted,
    )
    return {"runs": page.items, "next_page_token": page.next_page_token}


@router.get("/runs/{run_id}", response_model=RunOut, dependencies=ReadRuns)
def get_run(run_id: str, store: Store) -> Any:
    return store.get_run(run_id)


@router.patch("/runs/{run_id}", response_model=RunOut, dependencies=WriteRuns)
def update_run(run_id: str, body: RunUpdate, store: Store) -> Any:
    """Change a run's status, end time or name (e.g. finish it)."""
    return store.update_run(
        run_id, status=body.status, end_time=body.end_time, run_name=body.run_name
    )


@router.delete("/runs/{run_id}", status_code=204, dependencies=DeleteRuns)
def delete_run(run_id: str, store: Store) -> None:
    store.delete_run(run_id)


def _check_batch(body: LogBatch) -> None:
    for what, count, limit in (
        ("metrics", len(body.metrics), MAX_BATCH_METRICS),
        ("params", len(body.params), MAX_BATCH_PARAMS),
        ("tags", len(body.tags), MAX_BATCH_TAGS),
    ):
        if count > limit:
            raise InvalidArgumentError(
                f"log_batch got {count:,} {what}; the limit is {limit:,} per call.",
                hint=f"Split the batch into calls of at most {limit:,} {what}.",
            )


@router.post("/runs/{run_id}/batch", status_code=204, dependencies=WriteRuns)
def log_batch(run_id: str, body: LogBatch, store: Store) -> None:
    """Log metrics, params and tags in one transaction; 204 once committed.

    At most 10,000 metrics, 1,000 params and 1,000 tags per call (400 otherwise). A
    metric without ``timestamp`` gets the server's time.
    """
    _check_batch(body)
    now = now_ms()
    store.log_batch(
        run_id,
        metrics=[
            Metric(m.key, m.value, m.step, now if m.timestamp is None else m.timestamp)
            for m in body.metrics
        ],
        params=[Param(p.key, p.value) for p in body.params],
        tags=body.tags,
    )


@router.get(
    "/runs/{run_id}/metrics/{key:path}", response_model=MetricHistory, dependencies=ReadRuns
)
def get_metric_history(run_id: str, key: str, store: Store) -> Any:
    """Every logged point of one metric, by step then timestamp."""
    return {"metrics": store.get_metric_history(run_id, key)}


@router.post("/runs/{run_id}/inputs", status_code=204, dependencies=WriteRuns)
def log_inputs(run_id: str, body: LogInputs, store: Store) -> None:
    """Record datasets the run consumed."""
    store.log_inputs(
        run_id,
        [
            DatasetInput(
                Dataset(
                    name=item.dataset.name,
                    digest=item.dataset.digest,
                    source=item.dataset.source,
                    source_type=item.dataset.source_type,
                    schema=item.dataset.schema_,
                    profile=item.dataset.profile,
                    num_rows=item.dataset.num_rows,
                ),
                context=item.context,
            )
            for item in body.inputs
        ],
    )
