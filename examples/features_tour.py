"""A tour of the feature store: driver stats from Parquet to a point-in-time training set.

Run it with ``python examples/features_tour.py``; it works in a fresh ``SHIPYARD_HOME``.
The functions are reusable: the quickstart builds its training data with
``write_driver_stats``, ``driver_definitions`` and ``build_training_set``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from shipyard.features import (
    Entity,
    FeatureService,
    FeatureStore,
    FeatureView,
    Field,
    FileSource,
    Float32,
    Int64,
    ValueType,
)

START = datetime(2024, 1, 1, tzinfo=UTC)


def write_driver_stats(path: Path, drivers: int = 50, hours: int = 48, seed: int = 0) -> Path:
    """Hourly stats per driver (one row per driver and hour, at a random second), like
    Feast's driver_stats example; returns the Parquet file's path."""
    rng = np.random.default_rng(seed)
    n = drivers * hours
    hour = np.arange(n) // drivers
    event = START.timestamp() + hour * 3600 + rng.integers(0, 3600, n)
    stamps = pa.array((event * 1_000_000).astype("int64"), pa.timestamp("us", tz="UTC"))
    table = pa.table(
        {
            "driver_id": np.arange(n) % drivers + 1001,
            "event_timestamp": stamps,
            "created": stamps,
            "conv_rate": rng.random(n, dtype=np.float32),
            "acc_rate": rng.random(n, dtype=np.float32),
            "avg_daily_trips": rng.integers(0, 1000, n),
        }
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)
    return path


def driver_definitions(source_path: Path) -> dict[str, Any]:
    """The entity, the view (2 h TTL) and the service a model consumes."""
    driver = Entity(name="driver", join_keys=["driver_id"], value_type=ValueType.INT64)
    driver_stats = FeatureView(
        name="driver_stats",
        entities=[driver],
        schema=[
            Field(name="conv_rate", dtype=Float32),
            Field(name="acc_rate", dtype=Float32),
            Field(name="avg_daily_trips", dtype=Int64),
        ],
        source=FileSource(
            path=str(source_path),
            timestamp_field="event_timestamp",
            created_timestamp_column="created",
        ),
        ttl=timedelta(hours=2),
        owner="ml-platform@example.com",
        tags={"team": "rides"},
    )
    service = FeatureService(name="driver_activity", features=[driver_stats])
    return {"driver": driver, "driver_stats": driver_stats, "driver_activity": service}


def label_events(
    drivers: int = 50, hours: int = 48, rows: int = 500, seed: int = 1
) -> pd.DataFrame:
    """Entity rows to train on: a driver, a moment, and the label observed then."""
    rng = np.random.default_rng(seed)
    offsets = rng.integers(0, hours * 3600, rows)
    return pd.DataFrame(
        {
            "driver_id": rng.integers(1001, 1001 + drivers, rows),
            "event_timestamp": pd.to_datetime(START.timestamp() + offsets, unit="s", utc=True),
            "completed": rng.integers(0, 2, rows),
        }
    )


def build_training_set(
    store: FeatureStore,
    entity_df: pd.DataFrame,
    service: str = "driver_activity",
    *,
    save_as: str | None = None,
    run_id: str | None = None,
) -> pd.DataFrame:
    """The entity rows with each feature as it was at the row's time (NULL when older
    than the view's TTL). ``save_as`` also writes it as a dataset logged to the run."""
    job = store.get_historical_features(entity_df, service)
    if save_as:
        job.save_dataset(save_as, run_id=run_id)
    return job.to_df()


def main() -> None:
    store = FeatureStore()
    source = write_driver_stats(store.settings.home / "data" / "driver_stats.parquet")
    definitions = driver_definitions(source)
    plan = store.apply(definitions.values())
    print(f"applied: {plan.summary()}")
    for item in plan.items:
        print(f"  {item.action} {item.kind} {item.name} v{item.new_version}")

    training = build_training_set(store, label_events())
    missing = int(training["conv_rate"].isna().sum())
    print(f"training set: {len(training)} rows, {missing} without fresh features")
    print(training.head(3).to_string(index=False))


if __name__ == "__main__":
    main()
