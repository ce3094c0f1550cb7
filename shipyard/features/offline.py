"""The offline store: point-in-time correct training sets, and latest rows for materialize.

``historical_features`` keeps every entity row, in order, duplicates included, and adds
each requested feature as it was at the row's timestamp: the latest feature row with
``event_ts <= entity_ts`` and ``event_ts >= entity_ts - ttl`` (ties on event time go to
the larger created time), else NULL. Per view it reads only the join keys and times of
the source (time-pruned), runs the join kernel of :mod:`shipyard.features.pit`, then
reads the feature columns of just the matching rows. Results are Arrow tables.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from shipyard.errors import InvalidArgumentError
from shipyard.features.offline_sources import History, cast_feature, to_utc_ns
from shipyard.features.pit import point_in_time_rows

if TYPE_CHECKING:
    from shipyard.features.definitions import FeatureView, OnDemandFeatureView

logger = logging.getLogger(__name__)

ENTITY_TIMESTAMP = "event_timestamp"
_NULL_TIME = np.iinfo(np.int64).min


@dataclass(frozen=True)
class ViewRequest:
    """Features wanted from one view."""

    view: FeatureView
    features: tuple[str, ...]


def as_arrow(entity_df: Any) -> pa.Table:
    """An entity frame (pandas, Arrow, or a Parquet/CSV path) as an Arrow table."""
    if isinstance(entity_df, pa.Table):
        return entity_df
    if isinstance(entity_df, pa.RecordBatch):
        return pa.Table.from_batches([entity_df])
    if isinstance(entity_df, str) or hasattr(entity_df, "__fspath__"):
        import pyarrow.dataset as ds

        path = str(entity_df)
        fmt = "csv" if path.endswith(".csv") else "parquet"
        return ds.dataset(path, format=fmt).to_table()
    if type(entity_df).__module__.split(".")[0] == "pandas":
        return pa.Table.from_pandas(entity_df, preserve_index=False)
    raise InvalidArgumentError(
        f"Cannot use a {type(entity_df).__name__} as the entity frame.",
        hint="Pass a pandas DataFrame, a pyarrow Table, or a Parquet/CSV path.",
    )


def entity_timestamp_column(table: pa.Table, name: str | None) -> str:
    """The entity frame's timestamp column: ``name``, else ``event_timestamp``, else its
    only timestamp column."""
    if name:
        if name not in table.column_names:
            raise InvalidArgumentError(
                f"The entity frame has no column '{name}'; it has {table.column_names}."
            )
        return name
    if ENTITY_TIMESTAMP in table.column_names:
        return ENTITY_TIMESTAMP
    stamps = [f.name for f in table.schema if pa.types.is_timestamp(f.type)]
    if len(stamps) == 1:
        return stamps[0]
    raise InvalidArgumentError(
        "The entity frame needs an 'event_timestamp' column (the time each row is "
        f"asked about); it has {table.column_names}.",
        hint="Rename the column, or pass timestamp_column='...'.",
    )


def _numpy_ns(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    ns = to_utc_ns(column)
    return np.asarray(pc.fill_null(ns, _NULL_TIME).to_numpy(), dtype=np.int64)


def _to_ids(column: pa.ChunkedArray, low: int, high: int) -> np.ndarray:
    """``value - low`` per row as int64, -1 for nulls and values outside [low, high];
    converted a chunk at a time into one preallocated array."""
    out = np.empty(len(column), dtype=np.int64)
    offset = 0
    for chunk in column.chunks:
        n = len(chunk)
        values = pc.fill_null(chunk, low - 1).to_numpy(zero_copy_only=False)
        block = out[offset : offset + n]
        np.subtract(values, low, out=block, casting="unsafe")
        block[(block < 0) | (block > high - low)] = -1
        offset += n
    return out


def _factorize(
    entity_keys: Sequence[pa.ChunkedArray], feature_keys: Sequence[pa.ChunkedArray]
) -> tuple[np.ndarray, np.ndarray]:
    """Dense int64 ids for join-key tuples: feature rows >= 0 (-1 for a null key), entity
    rows share the ids and get -1 for keys no feature row has."""
    if len(feature_keys) == 1 and pa.types.is_integer(feature_keys[0].type):
        f_col, e_col = feature_keys[0], entity_keys[0]
        if pa.types.is_integer(e_col.type) and len(f_col) and f_col.null_count < len(f_col):
            low, high = (v.as_py() for v in pc.min_max(f_col).values())
            if high - low < 2**40:
                return _to_ids(e_col, low, high), _to_ids(f_col, low, high)
    e_id = np.zeros(len(entity_keys[0]), dtype=np.int64)
    f_id = np.zeros(len(feature_keys[0]), dtype=np.int64)
    for e_col, f_col in zip(entity_keys, feature_keys, strict=True):
        values = pc.unique(f_col).drop_null()
        try:
            e_col = e_col.cast(f_col.type)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise InvalidArgumentError(
                f"Entity key values of type {e_col.type} do not match the source's {f_col.type}."
            ) from exc
        fi = pc.fill_null(pc.index_in(f_col, value_set=values), -1).to_numpy().astype(np.int64)
        ei = pc.fill_null(pc.index_in(e_col, value_set=values), -1).to_numpy().astype(np.int64)
        width = max(len(values), 1)
        f_id = np.where((f_id < 0) | (fi < 0), -1, f_id * width + fi)
        e_id = np.where((e_id < 0) | (ei < 0), -1, e_id * width + ei)
    return e_id, f_id


def join_view(
    entity: pa.Table,
    entity_ts: np.ndarray,
    request: ViewRequest,
    *,
    artifacts_url: str | None = None,
) -> dict[str, pa.ChunkedArray | pa.Array]:
    """The requested features of one view for every entity row, point-in-time correct."""
    view = request.view
    keys = view.join_keys
    missing = [k for k in keys if k not in entity.column_names]
    if missing:
        raise InvalidArgumentError(
            f"The entity frame lacks the join key(s) {missing} of view '{view.name}'; "
            f"it has {entity.column_names}.",
            hint=f"Add {missing} to the entity frame.",
        )
    ttl = int(view.ttl.total_seconds() * 1_000_000_000) if view.ttl else None
    valid = entity_ts[entity_ts != _NULL_TIME]
    if not len(valid):
        return {f: pa.nulls(entity.num_rows, _feature_type(view, f)) for f in request.features}
    low = int(valid.min()) - ttl if ttl is not None else None
    with History(view, artifacts_url, (low, int(valid.max()))) as history:
        e_id, f_id, f_ts = _scan_narrow(history, entity, keys)
        created = None
        if history.created_field:
            field = history.created_field

            def created(rows: np.ndarray) -> np.ndarray:
                unique, inverse = np.unique(rows, return_inverse=True)
                values = _numpy_ns(history.gather(unique, [field]).column(field))
                return values[inverse]

        e_id[entity_ts == _NULL_TIME] = -1
        rows = point_in_time_rows(e_id, entity_ts, f_id, f_ts, created, ttl, overwrite=True)
        del f_id, f_ts
        hit = rows >= 0
        needed, position = np.unique(rows[hit], return_inverse=True)
        values = history.gather(needed, list(request.features))
    index = np.zeros(len(rows), dtype=np.int64)
    index[hit] = position
    take = pa.array(index, mask=~hit)
    dtypes = {f.name: f.dtype for f in view.features}
    return {f: cast_feature(values.column(f), dtypes[f]).take(take) for f in request.features}


def _scan_narrow(
    history: History, entity: pa.Table | None, keys: Sequence[str]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Key ids and event times (UTC ns) of every row of a view's history. Times are
    converted per segment and the Arrow columns dropped as they go, to keep memory low."""
    bound = history.row_bound()
    times = _Filler(bound)
    # One integer key (the common case) is kept as numpy from the start; others as Arrow.
    raw = _Filler(bound) if len(keys) == 1 else None
    low, high = None, None
    key_chunks: dict[str, list[pa.Array]] = {k: [] for k in keys}
    for _, table in history.scan([*keys, history.timestamp_field]):
        times.add(_numpy_ns(table.column(history.timestamp_field)))
        column = table.column(keys[0])
        if raw is not None and pa.types.is_integer(column.type):
            bounds = pc.min_max(column)
            if bounds["min"].is_valid:
                lo_, hi_ = bounds["min"].as_py(), bounds["max"].as_py()
                low = lo_ if low is None else min(low, lo_)
                high = hi_ if high is None else max(high, hi_)
            raw.add(np.asarray(pc.fill_null(column, _NULL_TIME).to_numpy(), dtype=np.int64))
        else:
            if raw is not None:  # not integers after all: fall back to Arrow chunks
                earlier = raw.result()
                key_chunks[keys[0]] = [pa.array(earlier)] if len(earlier) else []
                raw = None
            for k in keys:
                key_chunks[k].extend(table.column(k).chunks)
        del table, column
    f_ts = times.result()
    # Decoding left freed pages in Arrow's allocator; hand them back before the join's
    # own arrays are allocated, or the process peak counts both.
    pa.default_memory_pool().release_unused()
    if not len(f_ts):
        probes = 0 if entity is None else entity.num_rows
        empty = np.empty(0, dtype=np.int64)
        return np.full(probes, -1, dtype=np.int64), empty, empty
    entity_ints = entity is None or pa.types.is_integer(entity.column(keys[0]).type)
    if raw is not None and low is not None and high - low < 2**40 and entity_ints:
        f_id = raw.result()
        nulls = f_id == _NULL_TIME
        f_id -= low
        f_id[nulls] = -1
        del nulls
        if high - low < 2**31 - 1:
            f_id = f_id.astype(np.int32)  # half the memory through the join
        if entity is None:
            e_id = np.unique(f_id[f_id >= 0])
        else:
            e_id = _to_ids(entity.column(keys[0]), low, high)
        f_id[f_ts == _NULL_TIME] = -1
        return e_id, f_id, f_ts
    if raw is not None:
        key_chunks[keys[0]] = [pa.array(raw.result())] if len(f_ts) else []
    key_cols = [_chunked(key_chunks[k]) for k in keys]
    del key_chunks
    if entity is None:  # read_latest: one probe per distinct key
        distinct = pa.table(dict(zip(keys, key_cols, strict=True))).group_by(list(keys))
        entity = distinct.aggregate([])
    e_id, f_id = _factorize([entity.column(k) for k in keys], key_cols)
    f_id[f_ts == _NULL_TIME] = -1
    return e_id, f_id, f_ts


class _Filler:
    """Concatenates numpy pieces into one array, preallocated when the size is known."""

    def __init__(self, bound: int | None) -> None:
        self._array = np.empty(bound, dtype=np.int64) if bound is not None else None
        self._pieces: list[np.ndarray] = []
        self._size = 0

    def add(self, piece: np.ndarray) -> None:
        if self._array is not None:
            self._array[self._size : self._size + len(piece)] = piece
        else:
            self._pieces.append(piece)
        self._size += len(piece)

    def result(self) -> np.ndarray:
        if self._array is not None:
            return self._array[: self._size]
        return np.concatenate(self._pieces) if self._pieces else np.empty(0, np.int64)


def _chunked(chunks: list[pa.Array]) -> pa.ChunkedArray:
    typed = [c.type for c in chunks if not pa.types.is_null(c.type)]
    if not typed:
        return pa.chunked_array(chunks or [], pa.null())
    target = typed[0]
    return pa.chunked_array([c if c.type == target else c.cast(target) for c in chunks], target)


def _feature_type(view: FeatureView, name: str) -> pa.DataType:
    return next(f.dtype for f in view.features if f.name == name).to_arrow()


def historical_features(
    entity_df: Any,
    requests: Sequence[ViewRequest],
    on_demand: Sequence[tuple[OnDemandFeatureView, tuple[str, ...]]] = (),
    *,
    full_feature_names: bool = False,
    timestamp_column: str | None = None,
    artifacts_url: str | None = None,
) -> pa.Table:
    """The entity frame with the requested features added, point-in-time correct.

    Args:
        entity_df: pandas DataFrame, Arrow table or Parquet path with the join keys and
            an ``event_timestamp`` column (timezone-aware in any zone, or naive = UTC).
        requests: Which features of which views.
        on_demand: On-demand views and which of their features to compute.
        full_feature_names: Name columns ``view__feature`` instead of ``feature``.
        timestamp_column: The entity frame's timestamp column, if not ``event_timestamp``.
        artifacts_url: Artifact root holding push/stream offline logs.

    Raises:
        InvalidArgumentError: missing join keys, clashing feature names, bad types.
    """
    entity = as_arrow(entity_df)
    ts_name = entity_timestamp_column(entity, timestamp_column)
    entity_ts = _numpy_ns(entity.column(ts_name))
    # On-demand views read features of other views; join those too, without output.
    wanted: dict[str, tuple[FeatureView, list[str], list[str]]] = {}
    for request in requests:
        _, shown, _ = wanted.setdefault(request.view.name, (request.view, [], []))
        shown.extend(f for f in request.features if f not in shown)
    for odfv, _ in on_demand:
        for source in odfv.sources:
            view = getattr(source, "view", source)
            if not hasattr(view, "join_keys"):
                continue  # a RequestSource: its fields are entity frame columns
            _, _, hidden = wanted.setdefault(view.name, (view, [], []))
            for ref in source.feature_refs:
                feature = ref.split(":", 1)[1]
                if feature not in hidden:
                    hidden.append(feature)
    out = entity
    names = set(entity.column_names)
    inputs: dict[str, dict[str, Any]] = {}
    for name, (view, shown, hidden) in wanted.items():
        features = tuple(dict.fromkeys([*shown, *hidden]))
        columns = join_view(
            entity, entity_ts, ViewRequest(view, features), artifacts_url=artifacts_url
        )
        inputs[name] = columns
        for feature in shown:
            out = _append(out, names, name, feature, columns[feature], full_feature_names)
    for odfv, features in on_demand:
        computed = _on_demand(odfv, entity, inputs)
        for feature in features:
            out = _append(out, names, odfv.name, feature, computed[feature], full_feature_names)
    return out


def _append(
    table: pa.Table,
    names: set[str],
    view: str,
    feature: str,
    values: Any,
    full: bool,
) -> pa.Table:
    column = f"{view}__{feature}" if full else feature
    if column in names:
        raise InvalidArgumentError(
            f"Feature column '{column}' appears twice in the result.",
            hint="Pass full_feature_names=True to name columns 'view__feature'.",
        )
    names.add(column)
    return table.append_column(column, values)


def _on_demand(
    odfv: OnDemandFeatureView, entity: pa.Table, inputs: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    missing = [f.name for f in odfv.request_fields if f.name not in entity.column_names]
    if missing:
        raise InvalidArgumentError(
            f"On-demand view '{odfv.name}' needs request data {missing}, which the entity "
            "frame lacks.",
            hint=f"Add the column(s) {missing} to the entity frame.",
        )
    data = entity
    for ref in odfv.source_refs:
        view, feature = ref.split(":", 1)
        if feature not in data.column_names:
            data = data.append_column(feature, inputs[view][feature])
    result = odfv.call_udf(data if odfv.mode == "arrow" else data.to_pandas())
    if not isinstance(result, pa.Table):
        result = pa.Table.from_pandas(result, preserve_index=False)
    missing = [f.name for f in odfv.schema if f.name not in result.column_names]
    if missing or result.num_rows != entity.num_rows:
        raise InvalidArgumentError(
            f"On-demand view '{odfv.name}' returned {result.num_rows} rows with columns "
            f"{result.column_names}; expected {entity.num_rows} rows with {odfv.feature_names}."
        )
    return {f.name: cast_feature(result.column(f.name), f.dtype) for f in odfv.schema}


def _ns(value: datetime) -> int:
    if value.tzinfo is None:
        raise InvalidArgumentError(
            f"Time {value.isoformat()} has no timezone.",
            hint="Pass timezone-aware datetimes, e.g. datetime(..., tzinfo=timezone.utc).",
        )
    return int(value.timestamp()) * 1_000_000_000 + value.microsecond * 1_000


def read_latest(
    view: FeatureView, start: datetime, end: datetime, *, artifacts_url: str | None = None
) -> pa.Table:
    """The latest row per entity with ``start <= event time < end`` (ties: larger created
    time), as join keys, ``event_timestamp``, ``created`` (when the source has one) and
    the view's features in their declared dtypes. Used by materialize."""
    lo, hi = _ns(start), _ns(end) - 1
    keys = view.join_keys
    with History(view, artifacts_url, (lo, hi)) as history:
        e_id, f_id, f_ts = _scan_narrow(history, None, keys)
        if not len(f_ts):
            return _empty_latest(view, history.created_field is not None)
        f_id[(f_ts < lo) | (f_ts > hi)] = -1
        created = None
        if history.created_field:
            field = history.created_field

            def created(rows: np.ndarray) -> np.ndarray:
                unique, inverse = np.unique(rows, return_inverse=True)
                return _numpy_ns(history.gather(unique, [field]).column(field))[inverse]

        probe_ts = np.full(len(e_id), hi, dtype=np.int64)
        rows = point_in_time_rows(e_id, probe_ts, f_id, f_ts, created, None, overwrite=True)
        rows = np.sort(rows[rows >= 0])
        columns = [*keys, history.timestamp_field, *view.feature_names]
        if history.created_field:
            columns.append(history.created_field)
        table = history.gather(rows, columns)
    return _canonical(view, table, history.timestamp_field, history.created_field)


def _canonical(view: FeatureView, table: pa.Table, ts: str, created: str | None) -> pa.Table:
    utc = pa.timestamp("us", tz="UTC")

    def as_time(column: Any) -> pa.Array:
        return (
            pa.array(to_utc_ns(column), pa.int64())
            .cast(pa.timestamp("ns", tz="UTC"))
            .cast(utc, safe=False)
        )

    columns: dict[str, Any] = {k: table.column(k) for k in view.join_keys}
    columns["event_timestamp"] = as_time(table.column(ts))
    if created:
        columns["created"] = as_time(table.column(created))
    for f in view.features:
        columns[f.name] = cast_feature(table.column(f.name), f.dtype)
    return pa.table(columns)


def _empty_latest(view: FeatureView, with_created: bool) -> pa.Table:
    fields = [pa.field(c.name, c.dtype.to_arrow()) for c in view.entity_columns]
    fields.append(pa.field("event_timestamp", pa.timestamp("us", tz="UTC")))
    if with_created:
        fields.append(pa.field("created", pa.timestamp("us", tz="UTC")))
    fields.extend(pa.field(f.name, f.dtype.to_arrow()) for f in view.features)
    return pa.schema(fields).empty_table()


def read_source(view: FeatureView, *, artifacts_url: str | None = None) -> pa.RecordBatchReader:
    """Every row of a view's history (source plus offline log), streamed, in the same
    canonical columns as :func:`read_latest`."""
    history = History(view, artifacts_url)
    columns = [*view.join_keys, history.timestamp_field, *view.feature_names]
    if history.created_field:
        columns.append(history.created_field)
    schema = _empty_latest(view, history.created_field is not None).schema

    def batches() -> Any:
        try:
            for _, table in history.scan(columns):
                canonical = _canonical(view, table, history.timestamp_field, history.created_field)
                yield from canonical.cast(schema).to_batches()
        finally:
            history.close()

    return pa.RecordBatchReader.from_batches(schema, batches())


__all__ = [
    "ENTITY_TIMESTAMP",
    "ViewRequest",
    "as_arrow",
    "historical_features",
    "join_view",
    "read_latest",
    "read_source",
]
