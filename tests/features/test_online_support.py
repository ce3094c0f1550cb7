"""Builders shared by the online-store, materialize, push and route tests: small views,
tables of rows, and online stores on every backend (SQLite always, Redis when reachable).

It holds no tests; the other modules import it by name.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa

from shipyard.features.definitions import (
    Entity,
    FeatureView,
    Field,
    FileSource,
    PushSource,
    ValueType,
)
from shipyard.features.online import OnlineStore, open_online_store
from shipyard.features.types import Bool, Float32, Float64, Int64, String, UnixTimestamp


def _root_conftest() -> Any:
    """tests/conftest.py as a module (every test folder has a conftest.py of that name, so
    it cannot be imported by name)."""
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "conftest.py"
    spec = importlib.util.spec_from_file_location("_shipyard_root_conftest", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_root = _root_conftest()
REDIS_URL: str = _root.REDIS_URL
service_unavailable: Callable[[str, str], None] = _root.service_unavailable

T0 = datetime(2024, 1, 1, tzinfo=UTC)
TS = pa.timestamp("us", tz="UTC")

driver = Entity(name="driver", join_keys=["driver_id"], value_type=ValueType.INT64)
customer = Entity(name="customer", join_keys=["customer_id"], value_type=ValueType.STRING)


def driver_view(
    name: str = "driver_stats",
    *,
    ttl: timedelta | None = timedelta(hours=2),
    source: Any = None,
    extra: tuple[Field, ...] = (),
    online: bool = True,
) -> FeatureView:
    """A view keyed by driver_id with a feature of every common dtype."""
    return FeatureView(
        name=name,
        entities=[driver],
        schema=[
            Field("conv_rate", Float32),
            Field("trips", Int64),
            Field("city", String),
            Field("active", Bool),
            Field("score", Float64),
            Field("last_seen", UnixTimestamp),
            *extra,
        ],
        source=source
        or FileSource(
            path="/nonexistent/driver_stats.parquet",
            timestamp_field="event_timestamp",
            created_timestamp_column="created",
        ),
        ttl=ttl,
        online=online,
    )


def pair_view(name: str = "pair_stats") -> FeatureView:
    """A view keyed by (driver_id, customer_id)."""
    return FeatureView(
        name=name,
        entities=[driver, customer],
        schema=[Field("spend", Float64)],
        source=FileSource(path="/nonexistent/pairs.parquet", timestamp_field="event_timestamp"),
        ttl=None,
    )


def push_view(
    name: str = "driver_live",
    source_name: str = "driver_push",
    batch_path: str = "/nonexistent/driver_live.parquet",
) -> FeatureView:
    """A view fed by push source ``source_name``; its history lives in ``batch_path``."""
    batch = FileSource(
        path=batch_path,
        timestamp_field="event_timestamp",
        created_timestamp_column="created",
    )
    return driver_view(name, source=PushSource(name=source_name, batch_source=batch))


def rows(
    ids: list[int],
    ts: list[datetime],
    *,
    created: list[datetime] | None = None,
    conv: list[float | None] | None = None,
    trips: list[int | None] | None = None,
) -> pa.Table:
    """A table for :func:`driver_view`; unspecified features derive from the id."""
    n = len(ids)
    return pa.table(
        {
            "driver_id": pa.array(ids, pa.int64()),
            "event_timestamp": pa.array(ts, TS),
            "created": pa.array(created or ts, TS),
            "conv_rate": pa.array(conv if conv is not None else [i / 8 for i in ids], pa.float32()),
            "trips": pa.array(trips if trips is not None else [i * 10 for i in ids], pa.int64()),
            "city": pa.array([f"city-{i}" for i in ids]),
            "active": pa.array([i % 2 == 0 for i in ids]),
            "score": pa.array([i * 1.5 for i in ids], pa.float64()),
            "last_seen": pa.array([T0 + timedelta(seconds=i) for i in range(n)], TS),
        }
    )


def _redis_url() -> str:
    """A Redis URL with a fresh key prefix; skips (fails under CI) when Redis is down."""
    import redis

    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping()
    except redis.RedisError as exc:
        service_unavailable("Redis", f"{REDIS_URL}: {exc}")
    sep = "&" if "?" in REDIS_URL else "?"
    return f"{REDIS_URL}{sep}key_prefix=test-{uuid.uuid4().hex}:"


def online_url(kind: str, tmp_path: Path) -> str:
    """The URL of a new, empty online store on backend ``kind`` (sqlite, redis)."""
    if kind == "sqlite":
        return f"sqlite:///{tmp_path / uuid.uuid4().hex}.db"
    return _redis_url()


def flush_prefix(store: Any) -> None:
    """Delete every key under a Redis store's own prefix (the database is shared)."""
    client = getattr(store, "_redis", None)
    if client is None:
        return
    keys = list(client.scan_iter(match=f"{store.key_prefix}*", count=1000))
    for start in range(0, len(keys), 1000):
        client.delete(*keys[start : start + 1000])


@contextlib.contextmanager
def store_factory(kind: str, tmp_path: Path) -> Iterator[Callable[[], Any]]:
    """``make()`` -> a fresh, empty online store on backend ``kind`` (sqlite, redis); every
    store made is closed (and, on Redis, its keys deleted) on exit."""
    made: list[Any] = []

    def make() -> OnlineStore:
        store = open_online_store(online_url(kind, tmp_path))
        made.append(store)
        return store

    try:
        yield make
    finally:
        for store in made:
            flush_prefix(store)
            store.close()


@contextlib.contextmanager
def feature_store_on(
    kind: str, tmp_path: Path, db_url: str, artifacts_url: str, objects: list[Any]
) -> Iterator[Any]:
    """A FeatureStore on ``db_url`` with an online store on backend ``kind`` and
    ``objects`` applied; its Redis keys are deleted on exit."""
    from shipyard.config import Settings
    from shipyard.features.store import FeatureStore

    settings = Settings(home=tmp_path / "home", db=db_url, artifacts=artifacts_url)
    store = FeatureStore(settings, online_url=online_url(kind, tmp_path))
    if objects:
        store.apply(objects)
    try:
        yield store
    finally:
        flush_prefix(store.online_store)
        store.online_store.close()
