"""Current windows: the serving prediction log read back, and cut into windows to compare.

The model server writes Parquet parts under the artifact root::

    prediction-logs/<workspace>/<model>/date=YYYY-MM-DD/part-<ts_ms>-<uuid8>.parquet

with ``request_id``, ``ts`` (UTC), ``model``, ``version``, ``variant``, ``latency_ms``,
``prediction`` (+ ``prediction_label``), ``confidence``, ``features_sha256`` and one
``feature.<name>`` column per model input. :func:`read_prediction_log` reads the parts of a
time range (only the date folders that can hold it); :func:`time_windows` and
:func:`count_windows` cut a table sorted by time into tumbling (``step == size``) or sliding
(``step < size``) windows. Time windows are aligned to multiples of ``step`` since the epoch,
as Prometheus and stream processors align them, so every monitor cuts the same windows.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

import numpy as np

from shipyard.errors import InvalidArgumentError

if TYPE_CHECKING:
    import pyarrow as pa
    from numpy.typing import NDArray

__all__ = [
    "FEATURE_PREFIX",
    "LOG_ROOT",
    "Window",
    "count_windows",
    "feature_frame",
    "iter_tables",
    "latest_window",
    "parse_window",
    "read_prediction_log",
    "time_windows",
    "timestamps_us",
    "write_log_part",
]

#: Folder of the prediction log under the artifact root.
LOG_ROOT = "prediction-logs"
#: Prefix of the log's model-input columns.
FEATURE_PREFIX = "feature."


def _utc(at: datetime | None) -> datetime | None:
    if at is None:
        return None
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


def _day(folder: str) -> date | None:
    name = folder.rstrip("/").rsplit("/", 1)[-1]
    if not name.startswith("date="):
        return None
    try:
        return date.fromisoformat(name.removeprefix("date="))
    except ValueError:
        return None


def read_prediction_log(
    artifacts_url: str,
    workspace: str,
    model: str,
    start: datetime | None = None,
    end: datetime | None = None,
    *,
    columns: list[str] | None = None,
    cache: dict[str, pa.Table] | None = None,
) -> pa.Table:
    """The prediction log rows of ``model`` with ``start <= ts < end``, sorted by ``ts``.

    Args:
        artifacts_url: The artifact root (``settings.artifacts``).
        workspace: The workspace the model is served from.
        model: The model name.
        start: First instant to include (naive means UTC); None: from the beginning.
        end: First instant to leave out; None: up to now.
        columns: Columns to read (default: all); ``ts`` is always read.
        cache: Part key to its table, filled and reused across calls: parts are written
            once and never change, so a monitor polling the log decodes each part once.

    Returns:
        A pyarrow Table (empty, with no columns, when nothing was logged). Parts written
        with different feature sets are unified: a column a part lacks is null there.
    """
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from shipyard.store.artifacts import ArtifactStore

    start, end = _utc(start), _utc(end)
    if start is not None and end is not None and end <= start:
        raise InvalidArgumentError(f"The window ends ({end}) before it starts ({start}).")
    store = ArtifactStore(artifacts_url)
    prefix = f"{LOG_ROOT}/{workspace}/{model}"
    tables: list[pa.Table] = []
    seen: set[str] = set()
    wanted = None if columns is None else sorted({*columns, "ts"})
    for folder in store.list(prefix):
        day = _day(folder.path)
        if day is None or not folder.is_dir:
            continue
        if start is not None and day < start.date():
            continue
        if end is not None and day > end.date():
            continue
        for part in store.list(folder.path):
            if part.is_dir or not part.path.endswith(".parquet"):
                continue
            table = None if cache is None else cache.get(part.path)
            if table is None:
                with store.open(part.path) as fh:
                    table = pq.read_table(fh)
                if wanted is not None:
                    table = table.select([c for c in wanted if c in table.column_names])
                if cache is not None:
                    cache[part.path] = table
            seen.add(part.path)
            tables.append(table)
    if cache is not None:
        for key in set(cache) - seen:  # out of range now, or deleted
            del cache[key]
    if not tables:
        return pa.table({})
    table = pa.concat_tables(tables, promote_options="permissive")
    ts = table.column("ts")
    if ts.type != pa.timestamp("us", tz="UTC"):
        ts = ts.cast(pa.timestamp("us", tz="UTC"))
        table = table.set_column(table.column_names.index("ts"), "ts", ts)
    mask = None
    if start is not None:
        mask = pc.greater_equal(ts, pa.scalar(start, type=ts.type))
    if end is not None:
        upper = pc.less(ts, pa.scalar(end, type=ts.type))
        mask = upper if mask is None else pc.and_(mask, upper)
    if mask is not None:
        table = table.filter(mask)
    return table.sort_by("ts")


def write_log_part(artifacts_url: str, workspace: str, model: str, table: pa.Table) -> list[str]:
    """Write rows into the prediction log layout, one part per UTC day (backfills, tests,
    demos; the model server has its own writer). Returns the keys written."""
    import io
    import uuid

    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from shipyard.store.artifacts import ArtifactStore

    store = ArtifactStore(artifacts_url)
    ts = table.column("ts").cast(pa.timestamp("us", tz="UTC"))
    days = pc.strftime(ts, format="%Y-%m-%d")
    keys = []
    for day in pc.unique(days).to_pylist():
        part = table.filter(pc.equal(days, day))
        buffer = io.BytesIO()
        pq.write_table(part, buffer)
        ms = int(time.time() * 1000)
        key = f"{LOG_ROOT}/{workspace}/{model}/date={day}/part-{ms}-{uuid.uuid4().hex[:8]}.parquet"
        store.put_bytes(buffer.getvalue(), key)
        keys.append(key)
    return keys


def feature_frame(table: pa.Table) -> Any:
    """The log's ``feature.<name>`` columns as a pandas DataFrame named ``<name>``."""
    names = [c for c in table.column_names if c.startswith(FEATURE_PREFIX)]
    frame = table.select(names).to_pandas()
    frame.columns = [c.removeprefix(FEATURE_PREFIX) for c in names]
    return frame


# --- windows -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Window:
    """Rows ``[lo, hi)`` of a table sorted by time; for time windows, also its span.

    Attributes:
        lo: First row.
        hi: One past the last row.
        start: The window's first instant (time windows), else the first row's time.
        end: One past the window's last instant (time windows), else None.
    """

    lo: int
    hi: int
    start: datetime | None = None
    end: datetime | None = None

    @property
    def rows(self) -> int:
        return self.hi - self.lo


def _micros(value: timedelta | float | int, what: str) -> int:
    micros = (
        round(value.total_seconds() * 1e6)
        if isinstance(value, timedelta)
        else round(float(value) * 1e6)
    )
    if micros <= 0:
        raise InvalidArgumentError(f"The window {what} must be positive, got {value}.")
    return micros


def time_windows(
    ts_us: NDArray[np.int64],
    size: timedelta | float,
    step: timedelta | float | None = None,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
) -> list[Window]:
    """Time windows over sorted timestamps: ``[k*step, k*step + size)`` for every k whose
    window holds a timestamp (or, with ``start``/``end``, every window inside that range).

    Args:
        ts_us: Timestamps in microseconds since the epoch, ascending.
        size: Window length (timedelta or seconds).
        step: Distance between window starts; default ``size`` (tumbling).
        start: Only windows starting at or after this instant.
        end: Only windows ending at or before this instant.

    Returns:
        The windows in start order (empty windows between data left out).
    """
    size_us = _micros(size, "size")
    step_us = size_us if step is None else _micros(step, "step")
    ts = np.asarray(ts_us, dtype=np.int64)
    if ts.size == 0:
        return []
    if ts.size > 1 and np.any(ts[1:] < ts[:-1]):
        raise InvalidArgumentError("Timestamps must be sorted ascending.")
    lo_t, hi_t = int(ts[0]), int(ts[-1])
    if start is not None:
        lo_t = max(lo_t, _epoch_us(start))
    # The first window that can hold lo_t starts after lo_t - size.
    first = (lo_t - size_us) // step_us + 1
    last = hi_t // step_us
    ks = np.arange(first, last + 1, dtype=np.int64)
    starts = ks * step_us
    if start is not None:
        starts = starts[starts >= _epoch_us(start)]
    ends = starts + size_us
    if end is not None:
        keep = ends <= _epoch_us(end)
        starts, ends = starts[keep], ends[keep]
    los = np.searchsorted(ts, starts, side="left")
    his = np.searchsorted(ts, ends, side="left")
    out = []
    for s, e, lo, hi in zip(
        starts.tolist(), ends.tolist(), los.tolist(), his.tolist(), strict=True
    ):
        if hi > lo:
            out.append(Window(lo, hi, _from_us(s), _from_us(e)))
    return out


def count_windows(n: int, size: int, step: int | None = None) -> list[Window]:
    """Count windows over ``n`` rows: rows ``[k*step, k*step + size)`` that fit entirely.

    Args:
        n: Rows in the table.
        size: Rows per window.
        step: Rows between window starts; default ``size`` (tumbling).
    """
    step = size if step is None else step
    if size <= 0 or step <= 0:
        raise InvalidArgumentError(f"Window size and step must be positive, got {size}, {step}.")
    return [Window(lo, lo + size) for lo in range(0, n - size + 1, step)]


def latest_window(
    ts_us: NDArray[np.int64], *, size: timedelta | float | int, by: str = "time", now: datetime
) -> Window:
    """The live window: the last ``size`` of time before ``now`` or the last ``size`` rows.

    Args:
        ts_us: Timestamps in microseconds, ascending.
        size: A duration (``by="time"``) or a row count (``by="count"``).
        by: ``"time"`` or ``"count"``.
        now: The window's end (time windows).
    """
    ts = np.asarray(ts_us, dtype=np.int64)
    if by == "count":
        rows = int(size)  # type: ignore[arg-type]
        if rows <= 0:
            raise InvalidArgumentError(f"The window size must be positive, got {size}.")
        lo = max(0, ts.size - rows)
        return Window(lo, ts.size, _from_us(int(ts[lo])) if ts.size else None, None)
    if by != "time":
        raise InvalidArgumentError(f"Windows are by 'time' or 'count', not {by!r}.")
    end_us = _epoch_us(now)
    start_us = end_us - _micros(size, "size")  # type: ignore[arg-type]
    lo = int(np.searchsorted(ts, start_us, side="left"))
    hi = int(np.searchsorted(ts, end_us, side="left"))
    return Window(lo, hi, _from_us(start_us), _from_us(end_us))


def parse_window(text: str) -> tuple[str, float]:
    """``"10m"``, ``"1h"``, ``"30s"`` -> ("time", seconds); ``"5000"``/``"5000rows"`` ->
    ("count", rows).

    Raises:
        InvalidArgumentError: Anything else.
    """
    spec = text.strip().lower()
    units = {"ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
    for suffix in ("rows", "row"):
        if spec.endswith(suffix) and spec[: -len(suffix)].strip().isdigit():
            return "count", float(int(spec[: -len(suffix)]))
    if spec.isdigit():
        return "count", float(int(spec))
    for unit in sorted(units, key=len, reverse=True):
        number = spec[: -len(unit)]
        if spec.endswith(unit) and number:
            try:
                value = float(number)
            except ValueError:
                break
            if value > 0:
                return "time", value * units[unit]
    raise InvalidArgumentError(
        f"Cannot read the window {text!r}.",
        hint="Use a duration such as 30s, 10m, 1h, or a row count such as 5000rows.",
    )


def _epoch_us(at: datetime) -> int:
    at = _utc(at)  # type: ignore[assignment]
    delta = at - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds


def _from_us(us: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=us)


def timestamps_us(table: pa.Table) -> NDArray[np.int64]:
    """The ``ts`` column of a prediction log table as epoch microseconds."""
    import pyarrow as pa

    if table.num_rows == 0:
        return np.empty(0, dtype=np.int64)
    ts = table.column("ts").cast(pa.timestamp("us", tz="UTC")).cast(pa.int64())
    return ts.to_numpy()


def iter_tables(table: pa.Table, windows: list[Window]) -> Iterator[tuple[Window, pa.Table]]:
    """Each window with its slice of ``table``."""
    for window in windows:
        yield window, table.slice(window.lo, window.rows)
