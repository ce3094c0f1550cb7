"""Describe a dataset a run consumed: content digest, schema, row count and a small profile.

The digest is the sha256 of a canonical byte encoding of the content (column names and
types, then each column's values), so the same data gives the same digest in any process
on any machine; :func:`display_digest` shortens it to 16 hex characters for people. Files
and folders are digested from their bytes, streamed, so a 50 GB parquet folder is never
loaded into memory. pandas, numpy and pyarrow are imported only for data of their type.
"""

from __future__ import annotations

import hashlib
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from shipyard.errors import InvalidArgumentError
from shipyard.tracking.entities import Dataset

_VERSION = b"shipyard-dataset-v1\x00"
_CHUNK = 1 << 20
_MAX_PROFILED_COLUMNS = 200
_NULL = b"\xff" * 8


def display_digest(digest: str) -> str:
    """The first 16 hex characters of a digest: enough to tell datasets apart by eye."""
    return digest[:16]


def dataset_from(data: Any, *, name: str | None = None, source: str | None = None) -> Dataset:
    """Build a :class:`Dataset` from a DataFrame, array, Arrow table, dict of columns,
    or a file / folder path or URL.

    Args:
        data: ``pandas.DataFrame`` / ``Series``, ``numpy.ndarray``, ``pyarrow.Table`` /
            ``RecordBatch``, a mapping of column name to values, or a path / URL
            (``str`` or ``Path``; folders are digested file by file).
        name: Display name; defaults to the file name, else ``"dataset"``.
        source: Where in-memory data came from (a URI); paths are their own source.

    Raises:
        TypeError: ``data`` is none of the accepted types.
        InvalidArgumentError: a path that does not exist.
    """
    if isinstance(data, str | os.PathLike):
        return _from_location(os.fspath(data), name=name, source=source)
    module = type(data).__module__.split(".")[0]
    if module == "pandas":
        return _from_pandas(data, name=name, source=source)
    if module == "numpy":
        return _from_numpy(data, name=name, source=source)
    if module == "pyarrow":
        return _from_arrow(data, name=name, source=source)
    if isinstance(data, Mapping):
        import pandas as pd

        return _from_pandas(pd.DataFrame(dict(data)), name=name, source=source)
    raise TypeError(
        f"Cannot describe a dataset of type {type(data).__name__}. Pass a pandas DataFrame, "
        "a numpy array, a pyarrow Table, a dict of columns, or a file path or URL."
    )


def _source_type(source: str | None) -> str:
    if not source:
        return "memory"
    scheme, sep, _ = source.partition("://")
    return scheme if sep else "local"


def _finite(value: Any) -> float | None:
    number = float(value)
    return number if math.isfinite(number) else None


def _strings(values: Any) -> bytes:
    """Length-prefixed UTF-8 of each value's ``str``; nulls get a marker no string has."""
    import pandas as pd

    na, nat = pd.NA, pd.NaT
    parts = []
    for value in values:
        if (
            value is None
            or value is na
            or value is nat
            or (isinstance(value, float) and value != value)
        ):
            parts.append(_NULL)
        else:
            raw = str(value).encode("utf-8", "surrogatepass")
            parts.append(len(raw).to_bytes(8, "little"))
            parts.append(raw)
    return b"".join(parts)


def _numeric_bytes(array: Any) -> bytes:
    """Little-endian bytes of a numeric array, with every NaN spelled the same way."""
    import numpy as np

    array = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<"))
    if array.dtype.kind in "fc" and np.isnan(array).any():
        array = np.where(np.isnan(array), np.nan, array).astype(array.dtype)
    return array.tobytes()


def _header(kind: str, num_rows: int, columns: list[tuple[str, str]]) -> bytes:
    text = "\x00".join([kind, str(num_rows), *(f"{n}\x1f{t}" for n, t in columns)])
    return _VERSION + text.encode("utf-8", "surrogatepass") + b"\x00"


# -- pandas -----------------------------------------------------------------------------


def _from_pandas(frame: Any, *, name: str | None, source: str | None) -> Dataset:
    import numpy as np
    import pandas as pd

    if isinstance(frame, pd.Series):
        frame = frame.to_frame(name=str(frame.name) if frame.name is not None else "0")
    if not isinstance(frame, pd.DataFrame):
        raise TypeError(f"Cannot describe a dataset of type {type(frame).__name__}.")
    schema = {str(col): str(dtype) for col, dtype in frame.dtypes.items()}
    digest = hashlib.sha256(_header("table", len(frame), list(schema.items())))
    profile: dict[str, Any] = {}
    for position, (col, series) in enumerate(frame.items()):
        dtype = series.dtype
        is_plain = isinstance(dtype, np.dtype) and dtype.kind in "biufcmM"
        if is_plain:
            digest.update(_numeric_bytes(series.to_numpy()))
        else:
            digest.update(_strings(series.astype(object).to_numpy()))
        if position < _MAX_PROFILED_COLUMNS:
            profile[str(col)] = _profile_series(series)
    return Dataset(
        name=name or "dataset",
        digest=digest.hexdigest(),
        source=source or "",
        source_type=_source_type(source),
        schema=schema,
        profile=profile,
        num_rows=len(frame),
    )


def _profile_series(series: Any) -> dict[str, Any]:
    from pandas.api import types

    dtype = series.dtype
    summary: dict[str, Any] = {"nulls": int(series.isna().sum())}
    present = len(series) > summary["nulls"]
    if types.is_bool_dtype(dtype):
        summary["true"] = int(series.sum())
    elif types.is_numeric_dtype(dtype) and not types.is_complex_dtype(dtype):
        if present:
            summary.update(
                min=_finite(series.min()),
                max=_finite(series.max()),
                mean=_finite(series.mean()),
                std=_finite(series.std()) if len(series) > 1 else None,
            )
    elif types.is_datetime64_any_dtype(dtype) or types.is_timedelta64_dtype(dtype):
        if present:
            summary.update(min=str(series.min()), max=str(series.max()))
    else:
        summary["distinct"] = int(series.nunique(dropna=True))
    return summary


# -- numpy ------------------------------------------------------------------------------


def _from_numpy(array: Any, *, name: str | None, source: str | None) -> Dataset:
    import numpy as np

    if not isinstance(array, np.ndarray):
        array = np.asarray(array)
    dtype = str(array.dtype)
    schema: dict[str, Any] = {"dtype": dtype, "shape": list(array.shape)}
    num_rows = int(array.shape[0]) if array.ndim else 1
    header = _header("array", num_rows, [("shape", repr(tuple(array.shape))), ("dtype", dtype)])
    digest = hashlib.sha256(header)
    if array.dtype.kind in "biufcmM":
        digest.update(_numeric_bytes(array))
    else:
        digest.update(_strings(array.reshape(-1)))
    profile: dict[str, Any] = {}
    if array.dtype.kind in "iuf" and array.size:
        columns = array.reshape(len(array), -1) if array.ndim > 1 else array.reshape(-1, 1)
        for index in range(min(columns.shape[1], _MAX_PROFILED_COLUMNS)):
            values = columns[:, index]
            nulls = int(np.isnan(values).sum()) if array.dtype.kind == "f" else 0
            present = values[~np.isnan(values)] if nulls else values
            profile[str(index)] = {
                "nulls": nulls,
                "min": _finite(present.min()) if present.size else None,
                "max": _finite(present.max()) if present.size else None,
                "mean": _finite(present.mean()) if present.size else None,
            }
    return Dataset(
        name=name or "dataset",
        digest=digest.hexdigest(),
        source=source or "",
        source_type=_source_type(source),
        schema=schema,
        profile=profile,
        num_rows=num_rows,
    )


# -- pyarrow ----------------------------------------------------------------------------


def _from_arrow(table: Any, *, name: str | None, source: str | None) -> Dataset:
    import pyarrow as pa
    import pyarrow.compute as pc

    if isinstance(table, pa.RecordBatch):
        table = pa.Table.from_batches([table])
    if not isinstance(table, pa.Table):
        raise TypeError(f"Cannot describe a dataset of type {type(table).__name__}.")
    schema = {field.name: str(field.type) for field in table.schema}
    digest = hashlib.sha256(_header("table", table.num_rows, list(schema.items())))
    profile: dict[str, Any] = {}
    for position, field in enumerate(table.schema):
        column = table.column(field.name)
        numeric = pa.types.is_integer(field.type) or pa.types.is_floating(field.type)
        if numeric and column.null_count == 0:
            digest.update(_numeric_bytes(column.to_numpy()))
        else:
            digest.update(_strings(column.to_pylist()))
        if position >= _MAX_PROFILED_COLUMNS:
            continue
        summary: dict[str, Any] = {"nulls": int(column.null_count)}
        if numeric and table.num_rows > column.null_count:
            bounds = pc.min_max(column)
            summary.update(
                min=_finite(bounds["min"].as_py()),
                max=_finite(bounds["max"].as_py()),
                mean=_finite(pc.mean(column).as_py()),
            )
        elif pa.types.is_string(field.type) or pa.types.is_large_string(field.type):
            summary["distinct"] = int(pc.count_distinct(column).as_py())
        profile[field.name] = summary
    return Dataset(
        name=name or "dataset",
        digest=digest.hexdigest(),
        source=source or "",
        source_type=_source_type(source),
        schema=schema,
        profile=profile,
        num_rows=table.num_rows,
    )


# -- files and URLs ---------------------------------------------------------------------


def _from_location(location: str, *, name: str | None, source: str | None) -> Dataset:
    if "://" in location and not location.startswith("file://"):
        import fsspec

        fs, path = fsspec.core.url_to_fs(location)
        is_dir = fs.isdir(path)
        files = sorted(fs.find(path)) if is_dir else [path]
        digest = hashlib.sha256(_VERSION + b"files\x00")
        for file in files:
            relative = file[len(path) :].lstrip("/") if is_dir else ""
            digest.update(relative.encode() + b"\x00")
            with fs.open(file, "rb") as handle:
                _hash_stream(digest, handle)
        label = location.rstrip("/").rsplit("/", 1)[-1]
        return Dataset(
            name=name or label or "dataset",
            digest=digest.hexdigest(),
            source=source or location,
            source_type=_source_type(location),
        )
    if location.startswith("file://"):
        from urllib.request import url2pathname

        location = url2pathname(location.removeprefix("file://"))
    path = Path(location).expanduser().absolute()
    if not path.exists():
        raise InvalidArgumentError(
            f"Dataset path '{location}' does not exist.",
            hint="Pass an existing file or folder, a URL, or the data itself.",
        )
    digest = hashlib.sha256(_VERSION + b"files\x00")
    files = _local_files(path)
    for file in files:
        relative = file.relative_to(path).as_posix() if path.is_dir() else ""
        digest.update(relative.encode() + b"\x00")
        with file.open("rb") as handle:
            _hash_stream(digest, handle)
    schema, num_rows = _parquet_metadata(path, files)
    return Dataset(
        name=name or path.name,
        digest=digest.hexdigest(),
        source=source or str(path),
        source_type="local",
        schema=schema,
        num_rows=num_rows,
    )


def _hash_stream(digest: Any, handle: Any) -> None:
    for chunk in iter(lambda: handle.read(_CHUNK), b""):
        digest.update(chunk)


def _parquet_metadata(path: Path, files: list[Path]) -> tuple[dict[str, Any], int | None]:
    """Schema and row count of parquet files, read from their footers only."""
    parquet = [f for f in files if f.suffix in (".parquet", ".pq")]
    if not parquet or len(parquet) != len(files):
        return {}, None
    import pyarrow.parquet as pq

    schema: dict[str, Any] = {}
    rows = 0
    for file in parquet:
        meta = pq.ParquetFile(file)
        rows += meta.metadata.num_rows
        schema = schema or {f.name: str(f.type) for f in meta.schema_arrow}
    return schema, rows


def _local_files(path: Path) -> list[Path]:
    """Files below ``path`` in a stable order (the order the digest reads them)."""
    return sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
