"""Where feature rows come from: files, SQL queries, pushes, Kafka topics, request data.

Every batch source names the column holding each row's event time (``timestamp_field``)
and may name a ``created_timestamp_column`` that breaks ties between rows of equal event
time (the larger created time wins). Push and Kafka sources point at a ``batch_source``
holding their history; rows they receive are also appended to the view's offline log.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from shipyard.features._validate import (
    check_column,
    check_name,
    check_str,
    check_tags,
    invalid,
)

_FORMATS = ("parquet", "csv")
_SQL_SCHEMES = ("duckdb", "postgresql", "postgresql+psycopg")


@dataclass(frozen=True, eq=True)
class FileSource:
    """Parquet or CSV files: one file, a glob (``data/*.parquet``) or a folder, read with
    hive partitioning (``data/date=2024-01-01/part-0.parquet``).

    Example::

        FileSource(path="data/driver_stats.parquet", timestamp_field="event_timestamp",
                   created_timestamp_column="created")
    """

    path: str
    timestamp_field: str = "event_timestamp"
    created_timestamp_column: str | None = None
    file_format: Literal["parquet", "csv"] = "parquet"
    name: str = ""
    field_mapping: dict[str, str] = field(default_factory=dict)
    description: str = ""
    tags: dict[str, str] = field(default_factory=dict)

    def __init__(
        self,
        path: str | Any,
        timestamp_field: str | None = None,
        created_timestamp_column: str | None = None,
        file_format: Literal["parquet", "csv"] = "parquet",
        *,
        name: str = "",
        field_mapping: dict[str, str] | None = None,
        description: str = "",
        tags: dict[str, str] | None = None,
        event_timestamp_column: str | None = None,
    ) -> None:
        # ``event_timestamp_column`` is Feast's older spelling, kept so old repos load.
        set_ = object.__setattr__
        path = str(path)
        label = name or path
        set_(self, "path", check_str("FileSource", label, "path", path, empty=False))
        ts = timestamp_field or event_timestamp_column or "event_timestamp"
        set_(self, "timestamp_field", check_column("FileSource", label, "timestamp_field", ts))
        if created_timestamp_column is not None:
            check_column("FileSource", label, "created_timestamp_column", created_timestamp_column)
        set_(self, "created_timestamp_column", created_timestamp_column or None)
        if file_format not in _FORMATS:
            raise invalid(
                "FileSource",
                label,
                "file_format",
                f"must be one of {_FORMATS}; got {file_format!r}.",
            )
        set_(self, "file_format", file_format)
        set_(self, "name", check_name("FileSource", name) if name else "")
        set_(self, "field_mapping", dict(field_mapping or {}))
        set_(self, "description", description)
        set_(self, "tags", check_tags("FileSource", label, tags))

    def to_spec(self) -> dict[str, Any]:
        return {
            "kind": "file_source",
            "name": self.name,
            "path": self.path,
            "timestamp_field": self.timestamp_field,
            "created_timestamp_column": self.created_timestamp_column,
            "file_format": self.file_format,
            "field_mapping": self.field_mapping,
            "description": self.description,
            "tags": self.tags,
        }


@dataclass(frozen=True, eq=True)
class SqlSource:
    """A SQL query on DuckDB (``duckdb:///path.duckdb``) or PostgreSQL
    (``postgresql+psycopg://user@host/db``) whose rows are feature rows.

    Example::

        SqlSource(query="SELECT * FROM driver_stats", url="duckdb:///warehouse.duckdb",
                  timestamp_field="event_timestamp")
    """

    query: str
    url: str
    timestamp_field: str = "event_timestamp"
    created_timestamp_column: str | None = None
    name: str = ""
    description: str = ""
    tags: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        label = self.name or "sql"
        check_str("SqlSource", label, "query", self.query, empty=False)
        check_str("SqlSource", label, "url", self.url, empty=False)
        scheme = self.url.partition("://")[0]
        if scheme not in _SQL_SCHEMES:
            raise invalid(
                "SqlSource",
                label,
                "url",
                f"has scheme {scheme!r}; supported: duckdb, postgresql+psycopg.",
                hint="Write duckdb:///path/to/file.duckdb or postgresql+psycopg://user@host/db.",
            )
        check_column("SqlSource", label, "timestamp_field", self.timestamp_field)
        if self.created_timestamp_column is not None:
            check_column(
                "SqlSource", label, "created_timestamp_column", self.created_timestamp_column
            )
        if self.name:
            check_name("SqlSource", self.name)
        object.__setattr__(self, "tags", check_tags("SqlSource", label, self.tags))

    def to_spec(self) -> dict[str, Any]:
        return {
            "kind": "sql_source",
            "name": self.name,
            "query": self.query,
            "url": self.url,
            "timestamp_field": self.timestamp_field,
            "created_timestamp_column": self.created_timestamp_column,
            "description": self.description,
            "tags": self.tags,
        }


BatchSource = FileSource | SqlSource


def _check_batch(kind: str, name: str, batch_source: Any) -> None:
    if not isinstance(batch_source, FileSource | SqlSource):
        raise invalid(
            kind,
            name,
            "batch_source",
            f"must be a FileSource or SqlSource; got {type(batch_source).__name__}.",
        )


@dataclass(frozen=True, eq=True)
class PushSource:
    """Rows pushed by the SDK (``store.push``) or ``POST /api/v1/features/push``; its
    ``batch_source`` holds the history, pushed rows also land in the view's offline log."""

    name: str
    batch_source: BatchSource
    description: str = ""
    tags: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_name("PushSource", self.name)
        _check_batch("PushSource", self.name, self.batch_source)
        object.__setattr__(self, "tags", check_tags("PushSource", self.name, self.tags))

    @property
    def timestamp_field(self) -> str:
        return self.batch_source.timestamp_field

    @property
    def created_timestamp_column(self) -> str | None:
        return self.batch_source.created_timestamp_column

    def to_spec(self) -> dict[str, Any]:
        return {
            "kind": "push_source",
            "name": self.name,
            "batch_source": self.batch_source.to_spec(),
            "description": self.description,
            "tags": self.tags,
        }


@dataclass(frozen=True, eq=True)
class KafkaSource:
    """Raw events on a Kafka topic (JSON messages), consumed by ``shipyard features stream``.

    Example::

        KafkaSource(name="driver_events", topic="driver_raw", bootstrap_servers="localhost:9092",
                    timestamp_field="event_timestamp", batch_source=driver_files)
    """

    name: str
    topic: str
    bootstrap_servers: str
    timestamp_field: str = "event_timestamp"
    batch_source: BatchSource | None = None
    message_format: Literal["json"] = "json"
    created_timestamp_column: str | None = None
    output_topic: str | None = None
    dead_letter_topic: str | None = None
    description: str = ""
    tags: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_name("KafkaSource", self.name)
        check_str("KafkaSource", self.name, "topic", self.topic, empty=False)
        check_str(
            "KafkaSource", self.name, "bootstrap_servers", self.bootstrap_servers, empty=False
        )
        check_column("KafkaSource", self.name, "timestamp_field", self.timestamp_field)
        if self.message_format != "json":
            raise invalid(
                "KafkaSource",
                self.name,
                "message_format",
                f"must be 'json'; got {self.message_format!r}.",
            )
        if self.batch_source is not None:
            _check_batch("KafkaSource", self.name, self.batch_source)
        object.__setattr__(self, "tags", check_tags("KafkaSource", self.name, self.tags))

    def to_spec(self) -> dict[str, Any]:
        return {
            "kind": "kafka_source",
            "name": self.name,
            "topic": self.topic,
            "bootstrap_servers": self.bootstrap_servers,
            "timestamp_field": self.timestamp_field,
            "batch_source": self.batch_source.to_spec() if self.batch_source else None,
            "message_format": self.message_format,
            "created_timestamp_column": self.created_timestamp_column,
            "output_topic": self.output_topic,
            "dead_letter_topic": self.dead_letter_topic,
            "description": self.description,
            "tags": self.tags,
        }


DataSource = FileSource | SqlSource | PushSource | KafkaSource


def source_from_spec(spec: dict[str, Any]) -> DataSource:
    """Rebuild a data source from its stored spec."""
    spec = dict(spec)
    kind = spec.pop("kind")
    if kind == "file_source":
        return FileSource(
            spec.pop("path"),
            spec.pop("timestamp_field"),
            spec.pop("created_timestamp_column"),
            spec.pop("file_format"),
            **spec,
        )
    if kind == "sql_source":
        return SqlSource(**spec)
    if kind == "push_source":
        batch = source_from_spec(spec.pop("batch_source"))
        return PushSource(batch_source=batch, **spec)  # type: ignore[arg-type]
    if kind == "kafka_source":
        raw = spec.pop("batch_source")
        batch = source_from_spec(raw) if raw else None
        return KafkaSource(batch_source=batch, **spec)  # type: ignore[arg-type]
    raise ValueError(f"Unknown data source kind {kind!r}.")


def source_label(source: DataSource) -> str:
    """A short description for plans and errors."""
    if isinstance(source, FileSource):
        return source.name or source.path
    if isinstance(source, SqlSource):
        return source.name or "sql query"
    return source.name


__all__ = [
    "BatchSource",
    "DataSource",
    "FileSource",
    "KafkaSource",
    "PushSource",
    "SqlSource",
    "source_from_spec",
    "source_label",
]
