"""Push: rows sent by a client (SDK or ``POST /api/v1/features/push``) to the views that
read a push source, written to the online store and appended to each view's offline log
(so point-in-time joins and later materializations see them).

Rows are checked against the view's schema before anything is written: every join key,
the event time and every feature must be present with a value of the declared dtype, and
the error names the column.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

from shipyard.errors import InvalidArgumentError, NotFoundError, did_you_mean
from shipyard.features.online.base import view_features

if TYPE_CHECKING:
    import pyarrow as pa

    from shipyard.features.definitions import FeatureView
    from shipyard.features.store import FeatureStore

__all__ = ["PUSH_TARGETS", "PushTo", "coerce_push_table", "push", "views_of_push_source"]

logger = logging.getLogger(__name__)

PushTo = Literal["online", "offline", "online_and_offline"]
PUSH_TARGETS: tuple[str, ...] = ("online", "offline", "online_and_offline")

#: Epoch seconds of 0001-01-01 and 9999-12-31T23:59:59, the range Python datetimes hold.
_MIN_SECONDS, _MAX_SECONDS = -62_135_596_800, 253_402_300_799
_FLOAT32_MAX = 3.4028234663852886e38


def views_of_push_source(store: FeatureStore, source_name: str) -> list[FeatureView]:
    """The views whose source is the push source ``source_name``.

    Raises:
        NotFoundError: no view reads a push source of that name.
    """
    from shipyard.features.sources import PushSource

    views = store.list_feature_views()
    sources = sorted(
        {v.source.name for v in views if isinstance(v.source, PushSource)}  # type: ignore[union-attr]
    )
    chosen = [v for v in views if isinstance(v.source, PushSource) and v.source.name == source_name]
    if not chosen:
        raise NotFoundError(
            f"No feature view reads push source '{source_name}'."
            f"{did_you_mean(source_name, sources)}",
            hint=f"Push sources in use: {', '.join(sources) or 'none'}. Apply a view with "
            f"source=PushSource(name='{source_name}', ...) first.",
        )
    return chosen


# -- input to a typed table ------------------------------------------------------------------


def _to_table(data: Any) -> pa.Table:
    """A pyarrow Table from a Table, pandas DataFrame, column dict or list of row dicts."""
    try:
        return _convert(data)
    except UnicodeEncodeError as exc:
        raise InvalidArgumentError(
            "Pushed rows hold text that is not valid Unicode: "
            f"{exc.object[exc.start : exc.end]!r}.",
            hint="Send UTF-8 text (no lone surrogates).",
        ) from exc


def _convert(data: Any) -> pa.Table:
    import pyarrow as pa

    if isinstance(data, pa.Table):
        return data
    if isinstance(data, pa.RecordBatch):
        return pa.Table.from_batches([data])
    if isinstance(data, Mapping):
        columns = {str(k): list(v) if not hasattr(v, "__array__") else v for k, v in data.items()}
        lengths = {len(v) for v in columns.values()}
        if len(lengths) > 1:
            raise InvalidArgumentError(
                f"Push columns have different lengths: "
                f"{ {k: len(v) for k, v in columns.items()} }.",
                hint="Send one value per row in every column.",
            )
        return pa.table({k: _column(k, v) for k, v in columns.items()})
    if isinstance(data, Sequence) and not isinstance(data, str | bytes):
        if not all(isinstance(row, Mapping) for row in data):
            raise InvalidArgumentError("Push rows must be objects mapping column to value.")
        names: list[str] = []
        for row in data:
            names.extend(k for k in row if k not in names)
        return pa.table({n: _column(n, [row.get(n) for row in data]) for n in names})
    try:
        import pandas as pd
    except ImportError:  # pragma: no cover - pandas is a core dependency
        pd = None
    if pd is not None and isinstance(data, pd.DataFrame):
        try:
            return pa.Table.from_pandas(data, preserve_index=False)
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError) as exc:
            raise InvalidArgumentError(f"Pushed DataFrame does not convert: {exc}") from exc
    raise InvalidArgumentError(
        f"Cannot push a {type(data).__name__}.",
        hint="Push a pandas DataFrame, a pyarrow Table, a dict of columns or a list of rows.",
    )


def _column(name: str, values: Any) -> pa.Array:
    import pyarrow as pa

    try:
        return pa.array(values)
    except OverflowError as exc:
        raise InvalidArgumentError(
            f"Column '{name}' holds an integer too large for 64 bits.",
            hint="Send integers between -2**63 and 2**63 - 1.",
        ) from exc
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise InvalidArgumentError(
            f"Column '{name}' mixes value types: {exc}.",
            hint="Send values of one type per column.",
        ) from exc


def _cast(column: pa.ChunkedArray, name: str, dtype: Any, view: FeatureView) -> pa.ChunkedArray:
    """``column`` as the Arrow type of ``dtype``, refusing lossy or cross-kind casts
    (a string in a float column, 1.5 in an integer column)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    kind = column.type
    target = dtype.to_arrow()
    ok = pa.types.is_null(kind)
    if pa.types.is_floating(target):
        ok = ok or pa.types.is_floating(kind) or pa.types.is_integer(kind)
    elif pa.types.is_integer(target):
        ok = ok or pa.types.is_integer(kind) or pa.types.is_floating(kind)
    elif pa.types.is_boolean(target):
        ok = ok or pa.types.is_boolean(kind)
    elif pa.types.is_string(target):
        ok = ok or pa.types.is_string(kind) or pa.types.is_large_string(kind)
    elif pa.types.is_binary(target):
        ok = ok or pa.types.is_binary(kind) or pa.types.is_large_binary(kind)
    elif pa.types.is_timestamp(target):
        return _times(column, name, view)
    if ok and pa.types.is_float32(target) and pa.types.is_float64(kind):
        # Arrow's safe cast lets doubles beyond float32's range become infinities.
        finite = pc.filter(column, pc.is_finite(column))
        biggest = pc.max(pc.abs(finite)).as_py() if len(finite) else None
        if biggest is not None and biggest > _FLOAT32_MAX:
            raise _bad_dtype(name, kind, dtype, view, f"{biggest!r} is out of float32 range")
    if ok:
        try:
            return pc.cast(column, target, safe=True)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise _bad_dtype(name, kind, dtype, view, str(exc)) from exc
    raise _bad_dtype(name, kind, dtype, view)


def _bad_dtype(
    name: str, kind: Any, dtype: Any, view: FeatureView, detail: str = ""
) -> InvalidArgumentError:
    extra = f" ({detail})" if detail else ""
    return InvalidArgumentError(
        f"Column '{name}' has type {kind}, but view '{view.name}' declares it {dtype!r}{extra}.",
        hint=f"Send {dtype!r} values in '{name}'.",
    )


def _times(column: pa.ChunkedArray, name: str, view: FeatureView) -> pa.ChunkedArray:
    """Timestamps (naive means UTC), ISO 8601 strings or epoch seconds, as UTC micros."""
    import pyarrow as pa
    import pyarrow.compute as pc

    target = pa.timestamp("us", tz="UTC")
    kind = column.type
    if pa.types.is_timestamp(kind):
        plain = pc.cast(column, pa.timestamp("us", tz=kind.tz), safe=False)
        return plain.cast(pa.int64()).cast(target)
    if pa.types.is_date(kind):
        return pc.cast(pc.cast(column, pa.timestamp("us")), pa.int64()).cast(target)
    if pa.types.is_integer(kind) or pa.types.is_floating(kind):
        seconds = pc.cast(column, pa.float64())
        low, high = pc.min_max(seconds).values()
        if low.is_valid and not (low.as_py() >= _MIN_SECONDS and high.as_py() <= _MAX_SECONDS):
            raise InvalidArgumentError(
                f"Column '{name}' holds epoch seconds outside years 1-9999 "
                f"({low.as_py()!r} .. {high.as_py()!r}).",
                hint="Send epoch seconds (not milliseconds) or ISO 8601 times.",
            )
        micros = pc.multiply(seconds, 1_000_000.0)
        try:
            return pc.cast(pc.round(micros), pa.int64()).cast(target)
        except pa.ArrowInvalid as exc:  # NaN or infinity
            raise InvalidArgumentError(f"Column '{name}' holds a number that is no time.") from exc
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        parsed = []
        for value in column.to_pylist():
            if value is None:
                parsed.append(None)
                continue
            try:
                at = datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError:
                raise InvalidArgumentError(
                    f"Column '{name}' holds {value[:64]!r}, which is not an ISO 8601 time.",
                    hint="Send times like 2024-01-01T00:00:00Z, or epoch seconds.",
                ) from None
            parsed.append(at if at.tzinfo else at.replace(tzinfo=UTC))
        return pa.chunked_array([pa.array(parsed, type=target)])
    raise InvalidArgumentError(
        f"Column '{name}' has type {kind}, but view '{view.name}' needs a time there.",
        hint="Send timestamps, ISO 8601 strings or epoch seconds.",
    )


def coerce_push_table(view: FeatureView, data: Any) -> pa.Table:
    """The rows of ``data`` as a table of exactly the view's columns and dtypes: join
    keys, event time (timestamp[us, UTC]), created time when the source declares one (now
    when missing) and every feature.

    Raises:
        InvalidArgumentError: a column is missing, has the wrong type, or a join key or
            event time is null; the message names the column.
    """
    import pyarrow as pa

    table = _to_table(data)
    names = table.column_names
    timestamp = view.source.timestamp_field
    created = view.source.created_timestamp_column
    features = view_features(view)
    required = [*view.join_keys, timestamp, *features]
    missing = [c for c in required if c not in names]
    if missing:
        raise InvalidArgumentError(
            f"Rows pushed to view '{view.name}' lack the column(s) {missing}.",
            hint=f"Send every column of the view: {required}.",
        )
    columns: dict[str, Any] = {}
    for column in view.entity_columns:
        values = table.column(column.name)
        if column.dtype.name != "Unknown":
            values = _cast(values, column.name, column.dtype, view)
        columns[column.name] = values
    for key in view.join_keys:
        if key not in columns:
            columns[key] = table.column(key)
    for key in (*view.join_keys, timestamp):
        if table.column(key).null_count:
            raise InvalidArgumentError(
                f"Column '{key}' has null values; every pushed row needs one.",
                hint=f"Fill '{key}' in every row.",
            )
    columns[timestamp] = _times(table.column(timestamp), timestamp, view)
    if created:
        if created in names:
            columns[created] = _times(table.column(created), created, view)
        else:
            now = pa.scalar(datetime.now(UTC), pa.timestamp("us", tz="UTC"))
            columns[created] = pa.repeat(now, len(table))
        if columns[created].null_count:
            raise InvalidArgumentError(f"Column '{created}' has null values.")
    for feature, dtype in features.items():
        columns[feature] = _cast(table.column(feature), feature, dtype, view)
    return pa.table(columns)


class _Append:
    """An offline-log append, in a thread of its own when ``background``."""

    def __init__(self, artifacts: str, view_name: str, table: pa.Table, background: bool) -> None:
        from shipyard.features.offline_log import append_offline_log

        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None
        args = (artifacts, view_name, table)
        if not background:
            append_offline_log(*args)
            return

        def run() -> None:
            try:
                append_offline_log(*args)
            except BaseException as exc:  # handed to the caller by result()
                self._error = exc

        self._thread = threading.Thread(target=run, name="shipyard-push-log", daemon=True)
        self._thread.start()

    def result(self) -> None:
        if self._thread is not None:
            self._thread.join()
        if self._error is not None:
            raise self._error


def push(
    store: FeatureStore,
    source_name: str,
    df: Any,
    *,
    to: PushTo = "online_and_offline",
) -> dict[str, Any]:
    """Write rows to every view that reads push source ``source_name``.

    The rows are validated against each view first (nothing is written when one view
    refuses them); then each is appended to the view's offline log and written online
    (idempotent by entity and event time, so a retried push changes nothing).

    Args:
        store: the FeatureStore.
        source_name: name of the :class:`~shipyard.features.definitions.PushSource`.
        df: pandas DataFrame, pyarrow Table, dict of columns or list of row dicts.
        to: ``"online"``, ``"offline"`` or ``"online_and_offline"`` (default).

    Returns:
        ``{"push_source", "rows", "views": {view: rows written online}}``.

    Raises:
        NotFoundError: no view reads that push source.
        InvalidArgumentError: the rows do not match a view's schema.
    """
    from shipyard.features.materialize import online_store_of

    if to not in PUSH_TARGETS:
        raise InvalidArgumentError(
            f"Unknown push target {to!r}. Known: {', '.join(PUSH_TARGETS)}."
            f"{did_you_mean(str(to), PUSH_TARGETS)}"
        )
    views = views_of_push_source(store, source_name)
    tables = [(view, coerce_push_table(view, df)) for view in views]
    rows = tables[0][1].num_rows if tables else 0
    written: dict[str, int] = {}
    for view, table in tables:
        online = to != "offline" and view.online
        logging_thread = None
        if to != "online":
            # The Parquet append and the online write both release the GIL: run them side
            # by side, and return only once both are done (nothing acknowledged is lost).
            logging_thread = _Append(store.settings.artifacts, view.name, table, online)
        try:
            written[view.name] = online_store_of(store).write(view, table) if online else 0
        finally:
            if logging_thread is not None:
                logging_thread.result()
    logger.info("pushed %d rows to %s via %s", rows, list(written), source_name)
    return {"push_source": source_name, "rows": rows, "views": written}
