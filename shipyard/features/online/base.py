"""What every online store shares: the ``OnlineStore`` protocol, value statuses, the
canonical entity-key encoding and the conversion of an Arrow table into rows to store.

Rows are idempotent by (entity key, event time): a stored row is replaced only by a row
with a newer event time, or the same event time and a created time at least as new (so a
replay of the same rows, in any order, leaves the same state).
"""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol, runtime_checkable

from shipyard.errors import InvalidArgumentError, did_you_mean

if TYPE_CHECKING:
    import pyarrow as pa

    from shipyard.features.definitions import FeatureView

__all__ = [
    "EPOCH",
    "RESERVED_COLUMNS",
    "FieldStatus",
    "OnlineStore",
    "ReadResult",
    "WriteBatch",
    "created_column",
    "decoder",
    "entity_key",
    "entity_keys_of",
    "event_column",
    "from_micros",
    "prepare_write",
    "read_result",
    "require_features",
    "to_micros",
    "view_features",
    "view_join_keys",
    "view_ttl_micros",
]

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

#: Column names the stores use for themselves; no feature may take them.
RESERVED_COLUMNS = ("_entity_key", "_event_ts", "_created_ts")

#: Column names tried for the event and created times when the view's source names none.
_EVENT_COLUMNS = ("event_timestamp", "event_ts", "timestamp")
_CREATED_COLUMNS = ("created", "created_ts", "created_timestamp")


class FieldStatus(StrEnum):
    """The status of one value an online read returns (Feast's ``FieldStatus``)."""

    PRESENT = "PRESENT"
    """The entity has a row within the view's TTL (the value itself may be null)."""
    NOT_FOUND = "NOT_FOUND"
    """No row was ever written for the entity."""
    OUTSIDE_TTL = "OUTSIDE_TTL"
    """The entity's row is older than the view's TTL; its value is returned as None."""


class ReadResult(NamedTuple):
    """What :meth:`OnlineStore.read` returns, one list entry per requested entity key."""

    values: dict[str, list[Any]]
    statuses: dict[str, list[FieldStatus]]
    event_ts: list[datetime | None]


@runtime_checkable
class OnlineStore(Protocol):
    """The latest feature row per entity key and view, read by key at serving time.

    Implementations: :class:`~shipyard.features.online.sqlite.SqliteOnlineStore`
    (``sqlite:///path``) and :class:`~shipyard.features.online.redis.RedisOnlineStore`
    (``redis://host:port/db``); pick one with :func:`shipyard.features.online.open_online_store`.
    """

    def write(self, view: FeatureView, table: pa.Table) -> int:
        """Store ``table``'s rows (join keys, event time, optional created time, features);
        returns how many rows replaced or created a stored row."""
        ...

    def read(
        self,
        view: FeatureView,
        feature_names: Sequence[str],
        entity_keys: Sequence[tuple[Any, ...]],
        *,
        now: datetime | None = None,
    ) -> ReadResult:
        """Values, statuses and event times for ``entity_keys`` (tuples of the view's join
        key values, in :func:`view_join_keys` order)."""
        ...

    def get_watermark(self, view_name: str) -> datetime | None:
        """The end of the last materialized range of a view, None before the first."""
        ...

    def set_watermark(self, view_name: str, ts: datetime) -> None:
        """Record the end of a materialized range."""
        ...

    def delete_view(self, view_name: str) -> None:
        """Drop every row and the watermark of a view."""
        ...

    def close(self) -> None:
        """Release connections; the store is unusable afterwards."""
        ...


# -- views ---------------------------------------------------------------------------------


def view_join_keys(view: FeatureView) -> list[str]:
    """The join keys of a view, in the order its entities declare them."""
    return list(view.join_keys)


def _value_types(view: FeatureView) -> dict[str, str]:
    """Join key -> "INT64" / "INT32" / "STRING" / "BYTES" where the view knows it."""
    types: dict[str, str] = {}
    for column in view.entity_columns:
        kind = _KEY_KINDS.get(column.dtype.name)
        if kind is not None:
            types[column.name] = kind
    return types


_KEY_KINDS = {"Int64": "INT64", "Int32": "INT32", "String": "STRING", "Bytes": "BYTES"}


#: Features of each view object (views are immutable; a changed view is a new object).
_FEATURES: weakref.WeakKeyDictionary[Any, dict[str, Any]] = weakref.WeakKeyDictionary()


def view_features(view: FeatureView) -> dict[str, Any]:
    """Feature name -> dtype of a view, join keys left out (do not modify the result)."""
    try:
        return _FEATURES[view]
    except (KeyError, TypeError):
        pass
    keys = set(view.join_keys)
    found = {f.name: f.dtype for f in view.features if f.name not in keys}
    with contextlib.suppress(TypeError):
        _FEATURES[view] = found
    return found


def require_features(view: FeatureView, feature_names: Sequence[str]) -> dict[str, Any]:
    """The view's features (name -> dtype), after checking it has every one named."""
    features = view_features(view)
    for feature in feature_names:
        if feature not in features:
            raise InvalidArgumentError(
                f"View '{view.name}' has no feature '{feature}'.{did_you_mean(feature, features)}",
                hint=f"Its features: {', '.join(features)}.",
            )
    return features


def view_ttl_micros(view: FeatureView) -> int:
    """The view's TTL in microseconds; 0 means values never expire."""
    return view.ttl // timedelta(microseconds=1) if view.ttl else 0


# -- entity keys ---------------------------------------------------------------------------


def _encode(value: Any, value_type: str | None, name: str) -> str:
    if value is None:
        raise InvalidArgumentError(
            f"Join key '{name}' is null.", hint="Every entity row needs a value for each key."
        )
    if value_type in ("INT64", "INT32") or (value_type is None and _is_int(value)):
        if isinstance(value, bool) or not (_is_int(value) or _integral(value)):
            raise InvalidArgumentError(
                f"Join key '{name}' must be an integer, not {value!r}.",
                hint="Pass entity key values of the entity's value type.",
            )
        return f"i{int(value)}"
    if isinstance(value, bytes | bytearray | memoryview):
        return f"x{bytes(value).hex()}"
    if isinstance(value, float) and value_type is None:
        raise InvalidArgumentError(
            f"Join key '{name}' is a float ({value!r}); keys are integers or strings."
        )
    text = str(value)
    if not text.isascii():
        try:
            text.encode()
        except UnicodeEncodeError:
            raise InvalidArgumentError(
                f"Join key '{name}' is not valid Unicode text (it holds a lone surrogate)."
            ) from None
    return f"s{len(text)}:{text}"


def _is_int(value: Any) -> bool:
    return isinstance(value, int) or type(value).__name__.startswith(("int", "uint"))


def _integral(value: Any) -> bool:
    if isinstance(value, float):
        return value.is_integer()
    if isinstance(value, str):
        return value.strip().lstrip("-").isdigit()
    return False


def entity_key(values: Sequence[Any], value_types: Sequence[str | None] | None = None) -> str:
    """The canonical text of one entity key (never Python's salted ``hash()``).

    Integers encode as ``i<decimal>``, strings as ``s<length>:<text>`` and bytes as
    ``x<hex>``, concatenated: the length prefix makes the encoding unambiguous for any
    number of keys, and the same key values always give the same text in every process.
    """
    types = value_types or [None] * len(values)
    return "".join(
        _encode(v, t, str(i)) for i, (v, t) in enumerate(zip(values, types, strict=True))
    )


def entity_keys_of(view: FeatureView, rows: Sequence[tuple[Any, ...]]) -> list[str]:
    """Encoded keys of ``rows`` (tuples in the view's join key order)."""
    names = view_join_keys(view)
    kinds = _value_types(view)
    types = [kinds.get(n) for n in names]
    if len(names) == 1 and types[0] in (None, "INT64", "INT32"):
        # The common case (one integer key) without the general encoder's checks per value.
        try:
            if all(len(row) == 1 and type(row[0]) is int for row in rows):
                return [f"i{row[0]}" for row in rows]
        except TypeError:
            pass
    out = []
    for row in rows:
        if len(row) != len(names):
            raise InvalidArgumentError(
                f"View '{view.name}' has {len(names)} join key(s) {names}; got {row!r}."
            )
        out.append("".join(_encode(v, t, n) for v, t, n in zip(row, types, names, strict=True)))
    return out


# -- timestamps ----------------------------------------------------------------------------


def to_micros(value: datetime) -> int:
    """Epoch microseconds of a datetime; naive means UTC."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return (value - EPOCH) // timedelta(microseconds=1)


def from_micros(micros: int) -> datetime:
    """The UTC datetime of epoch microseconds."""
    if -_FAST_MICROS < micros < _FAST_MICROS:
        # Twice as fast, and exact here: the float's error stays far below half a
        # microsecond, which fromtimestamp() rounds away.
        return _fromtimestamp(micros / 1e6, UTC)
    return EPOCH + timedelta(microseconds=micros)


_fromtimestamp = datetime.fromtimestamp
#: |epoch µs| below which ``micros / 1e6`` is within 0.25 µs of the truth (until 2096).
_FAST_MICROS = 4_000_000_000_000_000


def _column_micros(column: pa.ChunkedArray, name: str) -> list[int]:
    import pyarrow as pa
    import pyarrow.compute as pc

    kind = column.type
    if pa.types.is_timestamp(kind) or pa.types.is_date(kind):
        micros = pc.cast(column, pa.timestamp("us"), safe=False).cast(pa.int64())
    elif pa.types.is_integer(kind):
        try:
            micros = pc.multiply_checked(column.cast(pa.int64()), 1_000_000)
        except pa.ArrowInvalid as exc:
            raise InvalidArgumentError(
                f"Column '{name}' holds epoch seconds too large for a time: {exc}."
            ) from exc
    elif pa.types.is_string(kind) or pa.types.is_large_string(kind):
        try:
            return [to_micros(datetime.fromisoformat(v)) for v in column.to_pylist()]
        except (TypeError, ValueError) as exc:
            raise InvalidArgumentError(
                f"Column '{name}' holds a value that is not an ISO 8601 time: {exc}.",
                hint="Send times such as 2024-01-01T00:00:00Z or epoch seconds.",
            ) from exc
    else:
        raise InvalidArgumentError(
            f"Column '{name}' has type {kind}; it must be a timestamp.",
            hint="Send timestamps, ISO 8601 strings or epoch seconds.",
        )
    if micros.null_count:
        raise InvalidArgumentError(f"Column '{name}' has null times; every row needs one.")
    return micros.to_pylist()  # type: ignore[no-any-return]


def event_column(view: FeatureView, columns: Sequence[str]) -> str:
    """The event-time column of a table written to ``view``."""
    declared = view.source.timestamp_field
    for name in (declared, *_EVENT_COLUMNS):
        if name and name in columns:
            return name
    raise InvalidArgumentError(
        f"No event time column for view '{view.name}': expected "
        f"'{declared or _EVENT_COLUMNS[0]}' among the columns {list(columns)}.",
        hint="Add the event timestamp column of the view's source.",
    )


def created_column(view: FeatureView, columns: Sequence[str]) -> str | None:
    """The created-time column of a table written to ``view``, if it has one."""
    declared = view.source.created_timestamp_column
    for name in (declared, *_CREATED_COLUMNS):
        if name and name in columns:
            return name
    return None


# -- writes --------------------------------------------------------------------------------


@dataclass
class WriteBatch:
    """Rows ready to store: encoded keys, times in epoch microseconds, and per-feature
    Python values (timestamps as epoch microseconds, bools as bools)."""

    keys: list[str]
    event_us: list[int]
    created_us: list[int]
    features: dict[str, list[Any]]
    dtypes: dict[str, Any]

    def __len__(self) -> int:
        return len(self.keys)


def _feature_values(column: pa.ChunkedArray, dtype: Any, name: str) -> list[Any]:
    import pyarrow as pa

    target = dtype.to_arrow()
    if pa.types.is_timestamp(target) and (
        pa.types.is_timestamp(column.type) or pa.types.is_date(column.type)
    ):
        return column.cast(pa.timestamp("us"), safe=False).cast(pa.int64()).to_pylist()
    try:
        return column.cast(target).to_pylist()  # type: ignore[no-any-return]
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise InvalidArgumentError(
            f"Column '{name}' has type {column.type}, which does not convert to {dtype!r}: {exc}.",
            hint="Send values of the dtype the view's schema declares.",
        ) from exc


def prepare_write(view: FeatureView, table: pa.Table) -> WriteBatch:
    """Turn ``table`` into a :class:`WriteBatch` for ``view``; features missing from the
    table are stored as null."""
    names = table.column_names
    join_keys = view_join_keys(view)
    missing = [k for k in join_keys if k not in names]
    if missing:
        raise InvalidArgumentError(
            f"Rows for view '{view.name}' lack the join key column(s) {missing}.",
            hint=f"Include {join_keys} in every row.",
        )
    kinds = _value_types(view)
    key_columns = [table.column(k).to_pylist() for k in join_keys]
    if len(join_keys) == 1:
        kind, name = kinds.get(join_keys[0]), join_keys[0]
        column = table.column(name)
        import pyarrow as pa

        if (
            kind in (None, "INT64", "INT32")
            and pa.types.is_integer(column.type)
            and (column.null_count == 0)
        ):
            keys = [f"i{v}" for v in key_columns[0]]
        else:
            keys = [_encode(v, kind, name) for v in key_columns[0]]
    else:
        types = [kinds.get(k) for k in join_keys]
        keys = [
            "".join(_encode(v, t, n) for v, t, n in zip(row, types, join_keys, strict=True))
            for row in zip(*key_columns, strict=True)
        ]
    event = event_column(view, names)
    created = created_column(view, names)
    event_us = _column_micros(table.column(event), event)
    created_us = _column_micros(table.column(created), created) if created else [0] * len(keys)
    dtypes = view_features(view)
    features: dict[str, list[Any]] = {}
    for feature, dtype in dtypes.items():
        if feature in RESERVED_COLUMNS:
            raise InvalidArgumentError(f"Feature name '{feature}' is reserved by the store.")
        if feature in names:
            features[feature] = _feature_values(table.column(feature), dtype, feature)
        else:
            features[feature] = [None] * len(keys)
    return WriteBatch(keys, event_us, created_us, features, dtypes)


def decoder(dtype: Any) -> Any:
    """A function turning a stored value (already int/float/str) back into its Python
    value, or None when values come back as they are."""
    name = dtype.name
    if name == "Bool":
        return bool
    if name == "UnixTimestamp":
        return from_micros
    return None


def now_micros(now: datetime | None) -> int:
    """Epoch microseconds of ``now``, or of the current time when None."""
    return to_micros(now if now is not None else datetime.now(UTC))


def read_result(
    view: FeatureView,
    feature_names: Sequence[str],
    rows: Sequence[Sequence[Any] | None],
    now: datetime | None,
    converters: Sequence[Any],
) -> ReadResult:
    """A :class:`ReadResult` from stored rows ``(key, event_us, *values)`` (None: not
    found), in key order. ``converters[j]`` turns a stored value of feature ``j`` back into
    its Python value (None: as stored). Rows outside the TTL come back as None values."""
    ttl = view_ttl_micros(view)
    limit = now_micros(now) - ttl if ttl else None
    width = len(feature_names) + 2
    blank = (None,) * width
    row_status: list[FieldStatus] = []
    event_ts: list[datetime | None] = []
    live: list[Sequence[Any]] = []
    for row in rows:
        if row is None:
            row_status.append(FieldStatus.NOT_FOUND)
            event_ts.append(None)
            live.append(blank)
        else:
            event_ts.append(from_micros(row[1]))
            if limit is not None and row[1] < limit:  # exactly ttl old still counts, as offline
                row_status.append(FieldStatus.OUTSIDE_TTL)
                live.append(blank)
            else:
                row_status.append(FieldStatus.PRESENT)
                live.append(row)
    # Transposing rows into columns in one zip() keeps the per-value work in C.
    columns = list(zip(*live, strict=True)) if live else [()] * width
    values: dict[str, list[Any]] = {}
    statuses: dict[str, list[FieldStatus]] = {}
    for j, (feature, convert) in enumerate(zip(feature_names, converters, strict=True), start=2):
        column = list(columns[j])
        if convert is not None:
            column = [None if v is None else convert(v) for v in column]
        values[feature] = column
        statuses[feature] = list(row_status)
    return ReadResult(values, statuses, event_ts)
