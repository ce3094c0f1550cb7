"""Rows of a SqlSource as a stream of Arrow batches, from DuckDB or PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pyarrow as pa

from shipyard.errors import BackendError
from shipyard.features.sources import SqlSource

_BATCH_ROWS = 100_000


def sql_batches(source: SqlSource) -> pa.RecordBatchReader:
    """Run the source's query once and stream its result."""
    scheme, _, rest = source.url.partition("://")
    if scheme == "duckdb":
        return _duckdb(rest.removeprefix("/"), source.query)
    return _postgres(source.url, source.query)


def _duckdb(path: str, query: str) -> pa.RecordBatchReader:
    import duckdb

    try:
        con = duckdb.connect(path or ":memory:", read_only=bool(path))
        return con.sql(query).to_arrow_reader(_BATCH_ROWS)
    except duckdb.Error as exc:
        raise BackendError(f"DuckDB query on '{path or ':memory:'}' failed: {exc}") from exc


def _postgres(url: str, query: str) -> pa.RecordBatchReader:
    import sqlalchemy as sa

    from shipyard.store.db import mask_url

    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    engine = sa.create_engine(url)
    try:
        conn = engine.connect().execution_options(stream_results=True, yield_per=_BATCH_ROWS)
        result = conn.execute(sa.text(query))
        names = list(result.keys())
        chunks = result.partitions(_BATCH_ROWS)
        first = next(chunks, [])
    except sa.exc.SQLAlchemyError as exc:
        engine.dispose()
        raise BackendError(f"Query on {mask_url(url)} failed: {exc}") from exc

    def batch(rows: list[Any]) -> pa.RecordBatch:
        return pa.RecordBatch.from_pydict({n: [r[i] for r in rows] for i, n in enumerate(names)})

    head = batch(first)

    def rest() -> Iterator[pa.RecordBatch]:
        try:
            yield head
            for rows in chunks:
                yield batch(rows).cast(head.schema)
        finally:
            conn.close()
            engine.dispose()

    return pa.RecordBatchReader.from_batches(head.schema, rest())
