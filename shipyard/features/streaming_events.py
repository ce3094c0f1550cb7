"""Raw stream events checked against a feature view: what an event must hold, and why one
is rejected.

:class:`EventSchema` is derived from the view (join keys, event time, the fields its
transform reads, typed features); :meth:`EventSchema.decode` turns a Kafka message value
into a checked row or raises :class:`RejectedEvent`, whose ``kind`` is one of a small
fixed vocabulary (``malformed_json``, ``missing_field``, ``wrong_type``,
``transform_failed``) fit for a metric label.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from shipyard.errors import InvalidArgumentError
from shipyard.features.transforms import Normalize, PythonTransform
from shipyard.features.types import Float64 as _FLOAT

if TYPE_CHECKING:
    import pyarrow as pa

    from shipyard.features.definitions import FeatureView
    from shipyard.features.types import DType

__all__ = ["REJECT_KINDS", "EventSchema", "RejectedEvent"]

#: Every ``RejectedEvent.kind``.
REJECT_KINDS = ("malformed_json", "missing_field", "wrong_type", "transform_failed")

_INT_RANGE = {"Int32": 2**31, "Int64": 2**63}


class RejectedEvent(Exception):
    """An event that cannot become a feature row; ``kind`` labels the dead-letter metric."""

    def __init__(self, kind: str, reason: str) -> None:
        super().__init__(reason)
        self.kind = kind
        self.reason = reason


def _parse_time(value: Any, name: str) -> datetime:
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raise RejectedEvent(
                "wrong_type", f"field '{name}' is not an ISO 8601 time: {value!r}"
            ) from None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        try:
            return datetime.fromtimestamp(value, UTC)
        except (OverflowError, OSError, ValueError):
            pass
    raise RejectedEvent(
        "wrong_type", f"field '{name}' must be an ISO 8601 time or epoch seconds, not {value!r}"
    )


def _check_value(value: Any, dtype: DType, name: str) -> Any:
    """``value`` as the Python value of ``dtype``; RejectedEvent when it is not one."""
    kind = dtype.name
    ok = False
    if kind in ("Float32", "Float64"):
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        if ok and not math.isfinite(value):
            raise RejectedEvent("wrong_type", f"field '{name}' must be finite, not {value!r}")
    elif kind in _INT_RANGE:
        limit = _INT_RANGE[kind]
        ok = isinstance(value, int) and not isinstance(value, bool) and -limit <= value < limit
    elif kind in ("String", "Bytes"):
        ok = isinstance(value, str)
    elif kind == "Bool":
        ok = isinstance(value, bool)
    elif kind == "UnixTimestamp":
        return _parse_time(value, name)
    if not ok:
        raise RejectedEvent(
            "wrong_type", f"field '{name}' must be {kind}, not {type(value).__name__} {value!r}"
        )
    return value


@dataclass(frozen=True)
class EventSchema:
    """What a raw event of a view must hold, derived from the view and its transform.

    Join keys and the event time are required and non-null. Fields the transform reads
    (``Normalize``'s inputs) are required numbers, or a list of them for ``from_list``.
    Features nothing computes are required (null allowed) and must match their dtype.
    """

    keys: tuple[tuple[str, DType], ...]
    timestamp: str
    created: str | None
    numbers: tuple[str, ...]
    number_list: tuple[str, int] | None
    passthrough: tuple[tuple[str, DType], ...]
    features: tuple[tuple[str, DType], ...]
    keep_all: bool

    @classmethod
    def for_view(cls, view: FeatureView) -> EventSchema:
        """The schema of raw events for ``view``."""
        from shipyard.features.online.base import view_features

        keys = tuple((f.name, f.dtype) for f in view.entity_columns)
        if not keys:
            raise InvalidArgumentError(
                f"View '{view.name}' has no resolved join keys.",
                hint="Apply the view with its entities, then stream it.",
            )
        features = tuple(view_features(view).items())
        transform = view.transform
        numbers: tuple[str, ...] = ()
        number_list = None
        computed: set[str] = set()
        if isinstance(transform, Normalize):
            computed = set(transform.means)
            if transform.from_list:
                number_list = (transform.from_list, len(transform.means))
            else:
                numbers = tuple(transform.means)
        keep_all = isinstance(transform, PythonTransform)
        passthrough = () if keep_all else tuple(f for f in features if f[0] not in computed)
        source = view.source
        created = getattr(source, "created_timestamp_column", None)
        return cls(
            keys,
            source.timestamp_field,
            created,
            numbers,
            number_list,
            passthrough,
            features,
            keep_all,
        )

    def decode(self, payload: bytes | None) -> dict[str, Any]:
        """The checked event in ``payload``; RejectedEvent says why it is unusable."""
        if payload is None:
            raise RejectedEvent("malformed_json", "message has no value")
        try:
            event = json.loads(payload)
        except (UnicodeDecodeError, ValueError) as exc:
            raise RejectedEvent("malformed_json", f"value is not JSON: {exc}") from None
        if not isinstance(event, dict):
            raise RejectedEvent(
                "malformed_json", f"value must be a JSON object, not {type(event).__name__}"
            )
        row: dict[str, Any] = dict(event) if self.keep_all else {}
        for name, dtype in self.keys:
            row[name] = _check_value(self._required(event, name), dtype, name)
        row[self.timestamp] = _parse_time(self._required(event, self.timestamp), self.timestamp)
        if self.created and event.get(self.created) is not None:
            row[self.created] = _parse_time(event[self.created], self.created)
        for name in self.numbers:
            row[name] = _check_value(self._required(event, name), _FLOAT, name)
        if self.number_list is not None:
            name, size = self.number_list
            values = self._required(event, name)
            if not isinstance(values, list) or len(values) != size:
                raise RejectedEvent(
                    "wrong_type", f"field '{name}' must be a list of {size} numbers, not {values!r}"
                )
            row[name] = [_check_value(v, _FLOAT, f"{name}[{i}]") for i, v in enumerate(values)]
        for name, dtype in self.passthrough:
            if name not in event:
                raise RejectedEvent("missing_field", f"missing field '{name}'")
            value = event[name]
            row[name] = None if value is None else _check_value(value, dtype, name)
        return row

    def _required(self, event: dict[str, Any], name: str) -> Any:
        value = event.get(name)
        if value is None:
            raise RejectedEvent(
                "missing_field",
                f"missing field '{name}'" if name not in event else f"field '{name}' is null",
            )
        return value

    def raw_table(self, rows: Sequence[dict[str, Any]]) -> pa.Table:
        """Checked events as an Arrow table with the declared columns typed."""
        import pyarrow as pa

        typed: dict[str, pa.DataType] = {n: d.to_arrow() for n, d in self.keys}
        typed[self.timestamp] = pa.timestamp("us", tz="UTC")
        if self.created:
            typed[self.created] = pa.timestamp("us", tz="UTC")
        typed.update({n: pa.float64() for n in self.numbers})
        if self.number_list is not None:
            typed[self.number_list[0]] = pa.list_(pa.float64())
        typed.update({n: d.to_arrow() for n, d in self.passthrough})
        names = list(typed)
        if self.keep_all:
            names += sorted({k for row in rows for k in row} - set(typed))
        arrays = [pa.array([r.get(n) for r in rows], type=typed.get(n)) for n in names]
        return pa.Table.from_arrays(arrays, names=names)

    def output_table(self, table: pa.Table) -> pa.Table:
        """The feature rows of a transformed table: join keys, times, typed features."""
        import pyarrow as pa

        columns = [n for n, _ in self.keys] + [self.timestamp]
        types = [d.to_arrow() for _, d in self.keys] + [pa.timestamp("us", tz="UTC")]
        if self.created and self.created in table.column_names:
            columns.append(self.created)
            types.append(pa.timestamp("us", tz="UTC"))
        columns += [n for n, _ in self.features]
        types += [d.to_arrow() for _, d in self.features]
        missing = [c for c in columns if c not in table.column_names]
        if missing:
            raise RejectedEvent("transform_failed", f"transform output lacks {missing}")
        try:
            arrays = [table.column(c).cast(t) for c, t in zip(columns, types, strict=True)]
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
            raise RejectedEvent(
                "transform_failed", f"transform output has wrong types: {exc}"
            ) from None
        return pa.Table.from_arrays(arrays, names=columns)
