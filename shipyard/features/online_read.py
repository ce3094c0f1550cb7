"""Online reads: features of a list of entity rows from the online store, with a status
per value, plus on-demand features computed from request data and the fetched values.

    response = get_online_features(
        store, ["driver_stats:conv_rate", "driver_stats:acc_rate"], [{"driver_id": 1001}]
    )
    response.to_dict()   # {"driver_id": [1001], "conv_rate": [0.5], "acc_rate": [0.9]}
    response.statuses    # {"conv_rate": [FieldStatus.PRESENT], ...}
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from shipyard.errors import InvalidArgumentError, NotFoundError, did_you_mean
from shipyard.features.online.base import FieldStatus

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

    from shipyard.features.definitions import FeatureService, FeatureView
    from shipyard.features.on_demand import OnDemandFeatureView
    from shipyard.features.store import FeatureStore

__all__ = ["OnlineResponse", "get_online_features", "resolve_features"]

#: Largest number of entity rows one read accepts.
MAX_ENTITY_ROWS = 100_000


@dataclass
class OnlineResponse:
    """Values of an online read, one list entry per entity row.

    Attributes:
        feature_names: output feature columns, in request order.
        values: join key columns (as sent) followed by the feature columns.
        statuses: per feature column, a :class:`FieldStatus` per row.
        event_timestamps: per feature column, the event time of the stored row (None when
            not found; on-demand features take none).
    """

    feature_names: list[str]
    values: dict[str, list[Any]]
    statuses: dict[str, list[FieldStatus]]
    event_timestamps: dict[str, list[datetime | None]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, list[Any]]:
        """Column name -> list of values (Feast's ``OnlineResponse.to_dict``)."""
        return {name: list(values) for name, values in self.values.items()}

    def to_df(self) -> pd.DataFrame:
        """The values as a pandas DataFrame, one row per entity row."""
        import pandas as pd

        return pd.DataFrame(self.values)

    def to_arrow(self) -> pa.Table:
        """The values as a pyarrow Table."""
        import pyarrow as pa

        return pa.table(self.values)


@dataclass
class _Part:
    """What one view contributes to a read."""

    view: Any
    features: list[str] = field(default_factory=list)
    on_demand: bool = False
    known: list[str] = field(init=False)

    def __post_init__(self) -> None:
        self.known = list(self.view.feature_names)


def _lookup_view(store: FeatureStore, name: str) -> Any:
    try:
        return store.get_feature_view(name)
    except NotFoundError:
        return store.get_on_demand_feature_view(name)


def resolve_features(
    store: FeatureStore, features: Sequence[str] | FeatureService | str
) -> list[_Part]:
    """Group requested features by view, in request order.

    ``features`` is a list of ``"view:feature"`` references, a FeatureService, or the name
    of an applied FeatureService.
    """
    from shipyard.features.definitions import FeatureService, FeatureViewProjection
    from shipyard.features.on_demand import OnDemandFeatureView

    if isinstance(features, str):
        features = store.get_feature_service(features)
    parts: dict[str, _Part] = {}
    if isinstance(features, FeatureService):
        for item in features.features:
            view = item.view if isinstance(item, FeatureViewProjection) else item
            names = (
                list(item.features)
                if isinstance(item, FeatureViewProjection)
                else list(item.feature_names)
            )
            part = parts.setdefault(
                view.name, _Part(view, on_demand=isinstance(view, OnDemandFeatureView))
            )
            part.features.extend(n for n in names if n not in part.features)
        return list(parts.values())
    if not isinstance(features, Sequence) or not features:
        raise InvalidArgumentError(
            "Name the features to read: a non-empty list of 'view:feature' references, "
            "a FeatureService or a service name."
        )
    for ref in features:
        view_name, sep, feature = str(ref).partition(":")
        if not sep or not view_name or not feature:
            raise InvalidArgumentError(
                f"Feature reference {ref!r} is not 'view:feature'.",
                hint="Write references like 'driver_stats:conv_rate'.",
            )
        part = parts.get(view_name)
        if part is None:
            view = _lookup_view(store, view_name)
            part = parts[view_name] = _Part(view, on_demand=isinstance(view, OnDemandFeatureView))
        if feature not in part.known:
            raise InvalidArgumentError(
                f"View '{view_name}' has no feature '{feature}'."
                f"{did_you_mean(feature, part.known)}",
                hint=f"Its features: {', '.join(part.known)}.",
            )
        if feature not in part.features:
            part.features.append(feature)
    return list(parts.values())


def _key_tuples(view: FeatureView, rows: Sequence[Mapping[str, Any]]) -> list[tuple[Any, ...]]:
    keys = view.join_keys
    try:
        return [tuple(row[k] for k in keys) for row in rows]
    except KeyError:
        for i, row in enumerate(rows):
            absent = [k for k in keys if k not in row]
            if absent:
                raise InvalidArgumentError(
                    f"Entity row {i} lacks join key(s) {absent} of view '{view.name}'.",
                    hint=f"Give {keys} in every entity row.",
                ) from None
        raise


def _output_name(view: str, feature: str, full: bool) -> str:
    return f"{view}__{feature}" if full else feature


def get_online_features(
    store: FeatureStore,
    features: Sequence[str] | FeatureService | str,
    entity_rows: Sequence[Mapping[str, Any]],
    *,
    full_feature_names: bool = False,
) -> OnlineResponse:
    """Read features for ``entity_rows`` from the online store.

    Args:
        store: the FeatureStore.
        features: ``"view:feature"`` references, a FeatureService or a service's name;
            on-demand views' features are computed from the fetched features and the
            request fields given in the entity rows.
        entity_rows: one mapping per entity: join key values (and request fields).
        full_feature_names: name outputs ``view__feature`` instead of ``feature``.

    Returns:
        An :class:`OnlineResponse`; values outside a view's TTL are None with status
        ``OUTSIDE_TTL``, never-written entities ``NOT_FOUND``.

    Raises:
        InvalidArgumentError: bad references, a missing join key or request field, or
            two views' features with the same name (use ``full_feature_names=True``).
    """
    from shipyard.features.materialize import online_store_of

    rows = list(entity_rows)
    if len(rows) > MAX_ENTITY_ROWS:
        raise InvalidArgumentError(
            f"{len(rows)} entity rows is more than the {MAX_ENTITY_ROWS} one read accepts.",
            hint="Split the rows into several reads.",
        )
    parts = resolve_features(store, features)
    stored = [p for p in parts if not p.on_demand]
    on_demand = [p for p in parts if p.on_demand]
    # Each stored view is read once, for the features asked for plus those on-demand
    # views compute from (fetched but not returned unless asked for).
    reads: dict[str, _Part] = {p.view.name: _Part(p.view, list(p.features)) for p in stored}
    for part in on_demand:
        for view, names in _stored_sources(part.view):
            read = reads.setdefault(view.name, _Part(view))
            read.features.extend(n for n in names if n not in read.features)

    online = online_store_of(store)
    values: dict[str, list[Any]] = {}
    statuses: dict[str, list[FieldStatus]] = {}
    times: dict[str, list[datetime | None]] = {}
    join_keys: list[str] = []
    for read in reads.values():
        join_keys.extend(k for k in read.view.join_keys if k not in join_keys)
    for key in join_keys:
        values[key] = [row.get(key) for row in rows]
    results = {
        name: online.read(read.view, read.features, _key_tuples(read.view, rows))
        for name, read in reads.items()
    }
    for part in stored:
        result = results[part.view.name]
        for name in part.features:
            out = _output_name(part.view.name, name, full_feature_names)
            _claim(out, values, part.view.name)
            values[out] = result.values[name]
            statuses[out] = result.statuses[name]
            times[out] = result.event_ts
    fetched = {
        (view, name): column
        for view, result in results.items()
        for name, column in result.values.items()
    }
    for part in on_demand:
        computed = _compute_on_demand(part.view, rows, fetched)
        for name in part.features:
            out = _output_name(part.view.name, name, full_feature_names)
            _claim(out, values, part.view.name)
            column = computed[name]
            values[out] = column
            statuses[out] = [
                FieldStatus.NOT_FOUND if v is None else FieldStatus.PRESENT for v in column
            ]
            times[out] = [None] * len(column)
    names = [n for n in values if n not in join_keys]
    return OnlineResponse(names, values, statuses, times)


def _claim(name: str, values: Mapping[str, Any], view: str) -> None:
    if name in values:
        raise InvalidArgumentError(
            f"Feature name '{name}' (from view '{view}') appears twice in the response.",
            hint="Pass full_feature_names=True to name features 'view__feature'.",
        )


def _stored_sources(view: OnDemandFeatureView) -> list[tuple[FeatureView, list[str]]]:
    from shipyard.features.definitions import FeatureView, FeatureViewProjection

    out = []
    for source in view.sources:
        if isinstance(source, FeatureViewProjection):
            out.append((source.view, list(source.features)))
        elif isinstance(source, FeatureView):
            out.append((source, list(source.feature_names)))
    return out


def _compute_on_demand(
    view: OnDemandFeatureView,
    rows: Sequence[Mapping[str, Any]],
    fetched: Mapping[tuple[str, str], list[Any]],
) -> dict[str, list[Any]]:
    """Run the view's UDF on its inputs: source features (``feature``, or
    ``view__feature`` when two sources share a name) and request fields."""
    import pyarrow as pa

    sources = _stored_sources(view)
    counts: dict[str, int] = {}
    for _, names in sources:
        for name in names:
            counts[name] = counts.get(name, 0) + 1
    inputs: dict[str, list[Any]] = {}
    for source, names in sources:
        for name in names:
            column = name if counts[name] == 1 else f"{source.name}__{name}"
            inputs[column] = fetched[(source.name, name)]
    for request_field in view.request_fields:
        absent = [i for i, row in enumerate(rows) if request_field.name not in row]
        if absent:
            raise InvalidArgumentError(
                f"On-demand view '{view.name}' needs request field '{request_field.name}', "
                f"missing from entity row {absent[0]}.",
                hint=f"Add '{request_field.name}' to every entity row.",
            )
        inputs[request_field.name] = [row[request_field.name] for row in rows]
    table = pa.table(
        {name: pa.array(column, type=_arrow_type(view, name)) for name, column in inputs.items()}
    )
    data: Any = table.to_pandas() if view.mode == "pandas" else table
    try:
        result = view.call_udf(data)
    except Exception as exc:
        raise InvalidArgumentError(
            f"On-demand view '{view.name}' failed on this request: {type(exc).__name__}: {exc}",
            hint="Check the request fields and the UDF.",
        ) from exc
    if not isinstance(result, pa.Table):
        result = pa.Table.from_pandas(result, preserve_index=False)
    missing = [f.name for f in view.schema if f.name not in result.column_names]
    if missing:
        raise InvalidArgumentError(
            f"On-demand view '{view.name}' returned no column(s) {missing}.",
            hint="The UDF must return every field of the view's schema.",
        )
    out = {}
    for spec in view.schema:
        column = result.column(spec.name)
        with contextlib.suppress(pa.ArrowInvalid, pa.ArrowNotImplementedError):
            column = column.cast(spec.dtype.to_arrow())
        out[spec.name] = column.to_pylist()
    return out


def _arrow_type(view: OnDemandFeatureView, name: str) -> Any:
    for request_field in view.request_fields:
        if request_field.name == name:
            return request_field.dtype.to_arrow()
    return None
