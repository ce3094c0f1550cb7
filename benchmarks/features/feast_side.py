"""Feast's side of the feature-store benchmark (runs in Feast's own virtualenv).

    python feast_side.py WORK SIZE WORKLOAD N OFFLINE_STORE

WORKLOAD is ``pit1`` (driver view), ``pit2`` (both views), ``materialize``, ``online``
(N entities per call, 1,000 calls) or ``push`` (N rows). OFFLINE_STORE is ``file`` or
``duckdb``. Prints one JSON line: seconds of the timed part and what it returned.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
import warnings
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
from _data import fresh_rows, peak_rss_mb

warnings.filterwarnings("ignore")

DRIVER_FEATURES = ["conv_rate", "acc_rate", "avg_daily_trips", *(f"f{i}" for i in range(1, 8))]
CUSTOMER_FEATURES = ["c_spend", "c_orders", "c_f1", "c_f2", "c_f3"]
START = datetime(2024, 1, 1, tzinfo=UTC)


def repo(work: Path, size: str, offline: str):  # type: ignore[no-untyped-def]
    from feast import Entity, FeatureStore, FeatureView, Field, FileSource, PushSource
    from feast.types import Float32, Int64

    folder = work / f"feast-{size}-{offline}-{time.monotonic_ns()}"
    folder.mkdir(parents=True)
    (folder / "feature_store.yaml").write_text(
        "project: bench\n"
        f"registry: {folder / 'registry.db'}\n"
        "provider: local\n"
        f"online_store:\n  type: sqlite\n  path: {folder / 'online.db'}\n"
        f"offline_store:\n  type: {offline}\n"
        "entity_key_serialization_version: 3\n"
    )
    data = work / "data" / size
    driver = Entity(name="driver", join_keys=["driver_id"])
    customer = Entity(name="customer", join_keys=["customer_id"])
    driver_source = FileSource(
        path=str(data / "driver_stats.parquet"),
        timestamp_field="event_timestamp",
        created_timestamp_column="created",
    )
    customer_source = FileSource(
        path=str(data / "customer_stats.parquet"),
        timestamp_field="event_timestamp",
        created_timestamp_column="created",
    )
    push_source = PushSource(name="driver_push", batch_source=driver_source)

    def fields(names: list[str]) -> list[Field]:
        return [
            Field(name=n, dtype=Int64 if n in ("avg_daily_trips", "c_orders") else Float32)
            for n in names
        ]

    driver_view = FeatureView(
        name="driver_stats",
        entities=[driver],
        ttl=timedelta(minutes=90),
        schema=fields(DRIVER_FEATURES),
        source=push_source,
        online=True,
    )
    customer_view = FeatureView(
        name="customer_stats",
        entities=[customer],
        ttl=timedelta(hours=8),
        schema=fields(CUSTOMER_FEATURES),
        source=customer_source,
        online=True,
    )
    store = FeatureStore(repo_path=str(folder))
    store.apply([driver, customer, push_source, driver_view, customer_view])
    return store, folder


def main() -> None:
    work, size, workload, n, offline = (
        Path(sys.argv[1]),
        sys.argv[2],
        sys.argv[3],
        int(sys.argv[4]),
        sys.argv[5],
    )
    store, folder = repo(work, size, offline)
    out: dict[str, object] = {}
    try:
        if workload in ("pit1", "pit2"):
            entity = pq.read_table(work / "data" / size / f"entity_{n}.parquet").to_pandas()
            features = [f"driver_stats:{f}" for f in DRIVER_FEATURES]
            if workload == "pit2":
                features += [f"customer_stats:{f}" for f in CUSTOMER_FEATURES]
            else:
                entity = entity.drop(columns=["customer_id"])
            start = time.perf_counter()
            result = store.get_historical_features(entity_df=entity, features=features).to_df()
            out["seconds"] = time.perf_counter() - start
            out["rows"] = len(result)
            out["null_conv_rate"] = int(result["conv_rate"].isna().sum())
        elif workload == "materialize":
            start = time.perf_counter()
            store.materialize(START, START + timedelta(hours=721))
            out["seconds"] = time.perf_counter() - start
        elif workload in ("online", "online_http"):
            store.write_to_online_store(
                "driver_stats", fresh_rows(work / "data" / size).to_pandas()
            )
            features = [f"driver_stats:{f}" for f in DRIVER_FEATURES]
            rows = [{"driver_id": i % 1000 + 1} for i in range(n)]
            timings = []
            for _ in range(1000):
                start = time.perf_counter()
                store.get_online_features(features=features, entity_rows=rows).to_dict()
                timings.append(time.perf_counter() - start)
            timings.sort()
            out["p50_ms"] = timings[len(timings) // 2] * 1000
            out["p99_ms"] = timings[int(len(timings) * 0.99)] * 1000
            out["seconds"] = sum(timings)
        elif workload == "push":
            frame = (
                pq.read_table(work / "data" / size / "driver_stats.parquet").slice(0, n).to_pandas()
            )
            from feast.data_source import PushMode

            start = time.perf_counter()
            store.push("driver_push", frame, to=PushMode.ONLINE)
            out["seconds"] = time.perf_counter() - start
        else:
            raise SystemExit(f"unknown workload {workload}")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    out["peak_rss_mb"] = peak_rss_mb()
    print(json.dumps(out))


if __name__ == "__main__":
    pd.options.mode.chained_assignment = None
    main()
