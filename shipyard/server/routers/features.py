"""Feature server routes of the platform server: online reads and pushes.

The bodies follow Feast's feature server, so its clients' payloads carry over:
``POST /features/online`` takes ``features`` (or ``feature_service``) and ``entities``
(columns) or ``entity_rows`` (rows) and answers ``metadata.feature_names`` plus one
``results`` entry of values, statuses and event times per name; ``POST /features/push``
takes ``push_source_name``, ``df`` (columns or rows) and ``to``.
"""

from __future__ import annotations

import base64
import math
import threading
import weakref
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field

from shipyard.errors import InvalidArgumentError
from shipyard.server.deps import PermissionRoute, Platform, Workspace, platform, requires
from shipyard.server.schemas import ERROR_RESPONSES

if TYPE_CHECKING:
    from shipyard.features.store import FeatureStore

__all__ = ["OnlineRequest", "PushRequest", "router"]

router = APIRouter(route_class=PermissionRoute, responses=ERROR_RESPONSES, tags=["features"])

PlatformDep = Annotated[Platform, Depends(platform)]

#: Most entity rows (and pushed rows) one request may carry.
MAX_ROWS = 100_000


class OnlineRequest(BaseModel):
    """Features to read and the entities to read them for."""

    model_config = ConfigDict(extra="forbid")

    features: list[Annotated[str, Field(max_length=512)]] | None = Field(
        None, max_length=10_000, description="'view:feature' references."
    )
    feature_service: Annotated[str, Field(max_length=256)] | None = Field(
        None, description="Name of an applied feature service (instead of features)."
    )
    entities: dict[str, list[Any]] | None = Field(
        None, description="Join keys (and request fields) as columns: {'driver_id': [1, 2]}."
    )
    entity_rows: list[dict[str, Any]] | None = Field(
        None, max_length=MAX_ROWS, description="The same as rows: [{'driver_id': 1}, ...]."
    )
    full_feature_names: bool = Field(False, description="Name outputs 'view__feature'.")


class OnlineResult(BaseModel):
    values: list[Any]
    statuses: list[str]
    event_timestamps: list[datetime | None]


class OnlineMetadata(BaseModel):
    feature_names: list[str]


class OnlineOut(BaseModel):
    metadata: OnlineMetadata
    results: list[OnlineResult]


class PushRequest(BaseModel):
    """Rows for the views that read a push source."""

    model_config = ConfigDict(extra="forbid")

    push_source_name: Annotated[str, Field(min_length=1, max_length=256)]
    df: dict[str, list[Any]] | list[dict[str, Any]] = Field(
        description="Columns ({'driver_id': [1], ...}) or rows ([{'driver_id': 1, ...}])."
    )
    to: Literal["online", "offline", "online_and_offline"] = "online_and_offline"


class PushOut(BaseModel):
    push_source: str
    rows: int
    views: dict[str, int] = Field(description="Rows written online per view.")


_stores: weakref.WeakKeyDictionary[Platform, dict[str, FeatureStore]] = weakref.WeakKeyDictionary()
_lock = threading.Lock()


def feature_store(state: Platform, workspace: str) -> FeatureStore:
    """The FeatureStore of a workspace on the server's settings (cached per app)."""
    cached = _stores.get(state, {}).get(workspace)
    if cached is not None:
        return cached
    from shipyard.features.store import FeatureStore

    with _lock:
        stores = _stores.setdefault(state, {})
        if workspace not in stores:
            stores[workspace] = FeatureStore(state.settings, workspace=workspace)
        return stores[workspace]


def _rows_of(columns: dict[str, list[Any]]) -> list[dict[str, Any]]:
    lengths = {len(v) for v in columns.values()}
    if len(lengths) > 1:
        raise InvalidArgumentError(
            f"'entities' columns have different lengths: "
            f"{ {k: len(v) for k, v in columns.items()} }.",
            hint="Give one value per entity in every column.",
        )
    count = lengths.pop() if lengths else 0
    if count > MAX_ROWS:
        raise InvalidArgumentError(f"{count} entities is more than the {MAX_ROWS} allowed.")
    names = list(columns)
    return [{n: columns[n][i] for n in names} for i in range(count)]


def _json_value(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    if isinstance(value, datetime):
        return value.isoformat()
    return value


@router.post(
    "/features/online",
    response_model=OnlineOut,
    dependencies=[Depends(requires("features", "read"))],
)
def read_online_features(body: OnlineRequest, state: PlatformDep, ws: Workspace) -> Any:
    """Online feature values for entities, with a status per value (``PRESENT``,
    ``NOT_FOUND``, ``OUTSIDE_TTL``) and the event time of each stored row."""
    from shipyard.features.online_read import get_online_features

    if (body.features is None) == (body.feature_service is None):
        raise InvalidArgumentError(
            "Name either 'features' or 'feature_service'.",
            hint='For example {"features": ["driver_stats:conv_rate"], '
            '"entities": {"driver_id": [1001]}}.',
        )
    if (body.entities is None) == (body.entity_rows is None):
        raise InvalidArgumentError(
            "Give the entities either as 'entities' (columns) or as 'entity_rows'.",
        )
    rows = body.entity_rows if body.entity_rows is not None else _rows_of(body.entities or {})
    wanted: Any = body.feature_service if body.feature_service is not None else body.features
    response = get_online_features(
        feature_store(state, ws), wanted, rows, full_feature_names=body.full_feature_names
    )
    results = []
    for name, values in response.values.items():
        statuses = response.statuses.get(name)
        results.append(
            {
                "values": [_json_value(v) for v in values],
                "statuses": [s.value for s in statuses] if statuses else ["PRESENT"] * len(rows),
                "event_timestamps": response.event_timestamps.get(name) or [None] * len(rows),
            }
        )
    return {"metadata": {"feature_names": list(response.values)}, "results": results}


@router.post(
    "/features/push",
    response_model=PushOut,
    dependencies=[Depends(requires("features", "write"))],
)
def push_features(body: PushRequest, state: PlatformDep, ws: Workspace) -> Any:
    """Write rows to the online store and the offline log of every view reading the push
    source; rows are validated against each view's schema first (400 naming the column)."""
    from shipyard.features.push import push

    count = (
        len(body.df) if isinstance(body.df, list) else max(map(len, body.df.values()), default=0)
    )
    if count > MAX_ROWS:
        raise InvalidArgumentError(
            f"{count} rows is more than the {MAX_ROWS} one push accepts.",
            hint="Split the rows into several pushes.",
        )
    return push(feature_store(state, ws), body.push_source_name, body.df, to=body.to)
