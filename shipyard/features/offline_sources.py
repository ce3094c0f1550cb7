"""A feature view's history as Arrow batches in a fixed order, readable twice.

The point-in-time join reads a view in two passes: first the narrow columns (join keys,
event and created time) of every row, then only the feature columns of the rows that
matched. Both passes walk the same *segments* (a Parquet row group, a CSV file, a
spilled SQL result) in the same order, so a row's position is stable between them, and
the second pass skips every segment without a matching row. Nothing is loaded whole.

Sources: FileSource (Parquet or CSV; a file, a glob or a hive-partitioned folder, local
or any fsspec URL), SqlSource (DuckDB or PostgreSQL; the result is spilled once to a
temporary Parquet file), and the offline log of pushed and streamed rows of the view
(``<artifacts>/features/offline-log/<view>/*.parquet``).
"""

from __future__ import annotations

import glob as globlib
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from shipyard.errors import BackendError, InvalidArgumentError
from shipyard.features.sources import FileSource, SqlSource
from shipyard.features.types import UNKNOWN

if TYPE_CHECKING:
    from shipyard.features.definitions import FeatureView

_TS = pa.timestamp("ns", tz="UTC")


def offline_log_url(artifacts_url: str, view_name: str) -> str:
    """The folder of a view's offline log under the artifact root."""
    from shipyard.features.offline_log import offline_log_prefix

    return f"{artifacts_url.rstrip('/')}/{offline_log_prefix(view_name)}"


def to_utc_ns(array: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    """Event times as int64 UTC nanoseconds. Naive timestamps are taken as UTC, integers
    as epoch seconds, strings as ISO-8601."""
    kind = array.type
    if pa.types.is_timestamp(kind):
        return array.cast(pa.timestamp("ns", tz=kind.tz)).cast(pa.int64())
    if pa.types.is_date(kind):
        return array.cast(pa.timestamp("ns")).cast(pa.int64())
    if pa.types.is_integer(kind):
        return pc.multiply(array.cast(pa.int64()), 1_000_000_000)
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        import pandas as pd

        values = pd.to_datetime(pd.Series(array.to_pylist()), utc=True, format="ISO8601")
        return pa.array(values.astype("int64"), mask=values.isna().to_numpy())
    raise InvalidArgumentError(f"Column of type {kind} cannot hold event times.")


@dataclass
class _Segment:
    """One unit read at once: a Parquet row group, or a whole non-Parquet file."""

    fragment: Any
    dataset: ds.Dataset
    mapping: dict[str, str]
    partition: dict[str, Any]
    rows: int = -1  # known after the first pass

    @property
    def row_group(self) -> int | None:
        if isinstance(self.fragment, ds.ParquetFileFragment):
            return self.fragment.row_groups[0].id
        return None


class History:
    """The rows of a view's source (plus its offline log), in a fixed order.

    Args:
        view: The feature view.
        artifacts_url: Artifact root holding the offline log; None skips the log.
        time_range: ``(lo_ns, hi_ns)``: the event times of interest. Parquet row groups
            whose statistics lie outside are skipped (time-sorted files read little);
            CSV rows outside are dropped.
    """

    def __init__(
        self,
        view: FeatureView,
        artifacts_url: str | None = None,
        time_range: tuple[int | None, int | None] = (None, None),
    ) -> None:
        self.view = view
        self._tmpdir: str | None = None
        source = view.batch_source
        # The view's source names the columns (a Kafka source may name them differently
        # from its batch source; the batch's columns are renamed to match).
        self.timestamp_field = view.source.timestamp_field
        self.created_field = view.source.created_timestamp_column or (
            source.created_timestamp_column if source is not None else None
        )
        self._datasets: list[tuple[ds.Dataset, dict[str, str]]] = []
        if source is not None:
            dataset, mapping = self._open(source)
            for raw, canonical in (
                (source.timestamp_field, self.timestamp_field),
                (source.created_timestamp_column, self.created_field),
            ):
                if raw and canonical and raw != canonical:
                    mapping[raw] = canonical
            self._datasets.append((dataset, mapping))
        if artifacts_url is not None and not isinstance(view.source, FileSource | SqlSource):
            log = _open_folder(offline_log_url(artifacts_url, view.name))
            if log is not None:
                self._datasets.append((log, {}))
        self._time_range = time_range
        self.segments: list[_Segment] = []

    # -- opening sources -----------------------------------------------------------------

    def _open(self, source: FileSource | SqlSource) -> tuple[ds.Dataset, dict[str, str]]:
        if isinstance(source, SqlSource):
            return self._spill_sql(source), {}
        mapping = {k: v for k, v in source.field_mapping.items() if k != v}
        return _open_files(source.path, source.file_format), mapping

    def _spill_sql(self, source: SqlSource) -> ds.Dataset:
        import pyarrow.parquet as pq

        from shipyard.features.offline_sql import sql_batches

        self._tmpdir = tempfile.mkdtemp(prefix="shipyard-sql-")
        path = os.path.join(self._tmpdir, "result.parquet")
        reader = sql_batches(source)
        with pq.ParquetWriter(path, reader.schema) as writer:
            for batch in reader:
                writer.write_batch(batch)
        return ds.dataset(path, format="parquet")

    def close(self) -> None:
        if self._tmpdir:
            shutil.rmtree(self._tmpdir, ignore_errors=True)
            self._tmpdir = None

    def __enter__(self) -> History:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- reading -------------------------------------------------------------------------

    def row_bound(self) -> int | None:
        """At most how many rows :meth:`scan` yields, from Parquet footers; None for CSV."""
        total = 0
        for dataset, _ in self._datasets:
            for fragment in dataset.get_fragments():
                if not isinstance(fragment, ds.ParquetFileFragment):
                    return None
                total += fragment.metadata.num_rows
        return total

    def _skip(self, segment: _Segment) -> bool:
        """Whether a Parquet row group's statistics show no event time in range."""
        lo, hi = self._time_range
        if (lo is None and hi is None) or segment.row_group is None:
            return False
        raw = {v: k for k, v in segment.mapping.items()}.get(
            self.timestamp_field, self.timestamp_field
        )
        if raw not in segment.dataset.schema.names:
            return False
        stats = (segment.fragment.row_groups[0].statistics or {}).get(raw)
        if not stats or "min" not in stats:
            return False
        low, high = stats["min"], stats["max"]
        if not isinstance(low, datetime) or not isinstance(high, datetime):
            return False

        def to_ns(value: datetime) -> int:
            return _aware_ns(value) if value.tzinfo else _naive_utc_ns(value)

        # Statistics come back as datetimes (microseconds): widen by 1 us to stay safe.
        return (hi is not None and to_ns(low) - 1_000 > hi) or (
            lo is not None and to_ns(high) + 1_000 < lo
        )

    def scan(self, columns: Sequence[str]) -> Iterator[tuple[int, pa.Table]]:
        """First pass: (segment index, table of ``columns``) for every segment in order,
        recording each segment's row count for :meth:`gather`. Parquet row groups whose
        statistics lie outside the time range are skipped; rows are not filtered, so a
        row's position is the same in both passes."""
        self.segments = []
        for dataset, mapping in self._datasets:
            for fragment in _fragments(dataset):
                segment = _Segment(fragment, dataset, mapping, _partition_keys(fragment))
                if self._skip(segment):
                    continue
                table = self._read(segment, columns)
                segment.rows = table.num_rows
                self.segments.append(segment)
                yield len(self.segments) - 1, table

    def gather(self, rows: Any, columns: Sequence[str]) -> pa.Table:
        """Second pass: ``columns`` of the given global row numbers (sorted, unique),
        read one column of one segment at a time to keep memory flat."""
        import numpy as np

        rows = np.asarray(rows, dtype=np.int64)
        pieces: list[pa.Table] = []
        offset = 0
        for segment in self.segments:
            lo, hi = np.searchsorted(rows, [offset, offset + segment.rows])
            if hi > lo:
                take = pa.array(rows[lo:hi] - offset)
                parts = {c: self._read(segment, [c]).column(0).take(take) for c in columns}
                pieces.append(pa.table(parts))
            offset += segment.rows
        if not pieces:
            return pa.table({c: pa.array([], pa.null()) for c in columns})
        return pa.concat_tables(pieces, promote_options="permissive")

    def _read(self, segment: _Segment, columns: Sequence[str]) -> pa.Table:
        inverse = {v: k for k, v in segment.mapping.items()}
        names = set(segment.dataset.schema.names)
        wanted = [inverse.get(c, c) for c in columns]
        present = list(
            dict.fromkeys(c for c in wanted if c in names and c not in segment.partition)
        )
        if segment.row_group is not None:
            fragment = segment.fragment
            with fragment.filesystem.open_input_file(fragment.path) as handle:
                table = pq.ParquetFile(handle).read_row_group(
                    segment.row_group, columns=present, use_threads=True
                )
        else:
            table = segment.fragment.to_table(
                schema=segment.dataset.schema, columns=present, use_threads=True
            )
            table = self._filter_converted(table, inverse)
        out = {}
        for column, raw in zip(columns, wanted, strict=True):
            if raw in segment.partition:
                out[column] = pa.array([segment.partition[raw]] * table.num_rows)
            elif raw in table.column_names:
                out[column] = table.column(raw)
            else:
                out[column] = pa.nulls(table.num_rows)
        return pa.table(out)

    def _filter_converted(self, table: pa.Table, inverse: dict[str, str]) -> pa.Table:
        """Rows of a non-Parquet file within the time range (same result in both passes)."""
        lo, hi = self._time_range
        raw = inverse.get(self.timestamp_field, self.timestamp_field)
        if (lo is None and hi is None) or raw not in table.column_names:
            return table
        ts = to_utc_ns(table.column(raw))
        mask = None
        if lo is not None:
            mask = pc.greater_equal(ts, lo)
        if hi is not None:
            upper = pc.less_equal(ts, hi)
            mask = upper if mask is None else pc.and_(mask, upper)
        return table.filter(pc.fill_null(mask, False))


def _naive_utc_ns(value: datetime) -> int:
    return _aware_ns(value.replace(tzinfo=UTC))


def _aware_ns(value: datetime) -> int:
    return int(value.timestamp()) * 1_000_000_000 + value.microsecond * 1_000


def _fragments(dataset: ds.Dataset) -> Iterator[Any]:
    for fragment in dataset.get_fragments():
        if isinstance(fragment, ds.ParquetFileFragment):
            yield from fragment.split_by_row_group()
        else:
            yield fragment


def _partition_keys(fragment: Any) -> dict[str, Any]:
    expr = getattr(fragment, "partition_expression", None)
    return ds.get_partition_keys(expr) if expr is not None else {}


def _open_folder(url: str) -> ds.Dataset | None:
    import fsspec

    fs, root = fsspec.core.url_to_fs(url)
    if not fs.exists(root):
        return None
    files = sorted(p for p in fs.find(root) if p.endswith(".parquet") and "/." not in p)
    if not files:
        return None
    return ds.dataset(files, format="parquet", filesystem=_arrow_fs(fs))


def _arrow_fs(fs: Any) -> Any:
    from pyarrow.fs import FSSpecHandler, LocalFileSystem, PyFileSystem

    protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
    if protocol in ("file", "local"):
        return LocalFileSystem()
    return PyFileSystem(FSSpecHandler(fs))


def _open_files(path: str, file_format: str) -> ds.Dataset:
    """A dataset over a file, a glob or a (hive-partitioned) folder."""
    import fsspec

    fs, root = fsspec.core.url_to_fs(path)
    fmt: Any = "parquet" if file_format == "parquet" else ds.CsvFileFormat()
    try:
        if any(ch in root for ch in "*?["):
            files = sorted(fs.glob(root)) if "://" in path else sorted(globlib.glob(root))
            if not files:
                raise InvalidArgumentError(
                    f"No file matches the source path '{path}'.",
                    hint="Check the FileSource path (globs are relative to the working folder).",
                )
            return ds.dataset(files, format=fmt, filesystem=_arrow_fs(fs))
        if not fs.exists(root):
            raise InvalidArgumentError(
                f"Source path '{path}' does not exist.",
                hint="Check the FileSource path (relative paths start at the working folder).",
            )
        if fs.isdir(root):
            return ds.dataset(
                root,
                format=fmt,
                filesystem=_arrow_fs(fs),
                partitioning="hive",
                exclude_invalid_files=True,
                ignore_prefixes=[".", "_"],
            )
        return ds.dataset(root, format=fmt, filesystem=_arrow_fs(fs))
    except (OSError, pa.ArrowInvalid) as exc:
        raise BackendError(f"Cannot read the source '{path}': {exc}") from exc


def cast_feature(column: pa.Array | pa.ChunkedArray, dtype: Any) -> pa.Array | pa.ChunkedArray:
    """A column in its declared dtype (UnixTimestamp as UTC microseconds)."""
    if dtype is UNKNOWN:
        return column
    target = dtype.to_arrow()
    if column.type == target:
        return column
    if pa.types.is_null(column.type):
        return pa.nulls(len(column), target)
    if pa.types.is_timestamp(target):
        return (
            pa.array(to_utc_ns(column), pa.int64())
            .cast(pa.timestamp("ns", tz="UTC"))
            .cast(target, safe=False)
        )
    try:
        return column.cast(target)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise InvalidArgumentError(
            f"Feature values of type {column.type} do not convert to {dtype.name}: {exc}",
            hint="Fix the schema's dtype or the source data.",
        ) from exc


__all__ = [
    "History",
    "cast_feature",
    "offline_log_url",
    "to_utc_ns",
]
