"""Monitoring routes of the platform server: ground-truth labels posted after the
predictions, and the gauges of monitors running inside the server.

``POST /monitoring/labels`` stores ``request_id -> label`` for a model (a later post for the
same request replaces the label); the monitor joins them with the prediction log to export
accuracy, F1, ROC-AUC or RMSE per window. Posting labels needs ``models:write``.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from shipyard.monitoring.labels import MAX_LABELS_PER_CALL, LabelStore
from shipyard.server.deps import PermissionRoute, Platform, platform, requires, workspace
from shipyard.server.schemas import ERROR_RESPONSES

__all__ = ["router"]

router = APIRouter(route_class=PermissionRoute, responses=ERROR_RESPONSES, tags=["monitoring"])

PlatformDep = Annotated[Platform, Depends(platform)]
Workspace = Annotated[str, Depends(workspace)]
ModelName = Annotated[str, Path(min_length=1, max_length=256)]


class LabelIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    request_id: str = Field(min_length=1, max_length=128)
    label: bool | int | float | str = Field(
        description="The ground truth: a class label or a regression target."
    )


class LabelsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str = Field(min_length=1, max_length=256)
    labels: list[LabelIn] = Field(min_length=1, max_length=MAX_LABELS_PER_CALL)


class LabelsOut(BaseModel):
    model: str
    stored: int


class LabelCount(BaseModel):
    model: str
    count: int


@router.post(
    "/monitoring/labels",
    response_model=LabelsOut,
    dependencies=[Depends(requires("models", "write"))],
)
def post_labels(body: LabelsIn, state: PlatformDep, ws: Workspace) -> Any:
    """Store ground-truth labels by request id (replacing earlier ones)."""
    store = LabelStore(state.engine, ws)
    stored = store.put(body.model, [(item.request_id, item.label) for item in body.labels])
    return {"model": body.model, "stored": stored}


@router.get(
    "/monitoring/labels/{model}/count",
    response_model=LabelCount,
    dependencies=[Depends(requires("models", "read"))],
)
def count_labels(model: ModelName, state: PlatformDep, ws: Workspace) -> Any:
    """How many labels a model has."""
    return {"model": model, "count": LabelStore(state.engine, ws).count(model)}


@router.get(
    "/monitoring/metrics",
    response_class=Response,
    dependencies=[Depends(requires("models", "read"))],
    responses={200: {"content": {"text/plain": {}}}},
)
def monitor_metrics(request: Request) -> Response:
    """The gauges of the monitors running in this server (Prometheus text format; empty
    when none runs: set ``SHIPYARD_MONITOR_MODELS``)."""
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    service = getattr(request.app.state, "shipyard_monitor", None)
    body = b"" if service is None or service.registry is None else generate_latest(service.registry)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
