"""Shipyard's side of the feature-store benchmark (runs in the project's .venv).

    python shipyard_side.py WORK SIZE WORKLOAD N ONLINE_URL

Same workloads as feast_side.py: ``pit1``, ``pit2``, ``materialize``, ``online`` (N entities
a call, 1,000 calls), ``push`` (N rows). ONLINE_URL picks the online store (``sqlite`` for
the embedded default, or a ``redis://`` URL). Prints one JSON line; ``pit1``/``pit2`` also
write the result's driver features to WORK/result-<workload>-<n>.parquet for the
correctness check.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow.parquet as pq
from _data import fresh_rows, peak_rss_mb

DRIVER_FEATURES = ["conv_rate", "acc_rate", "avg_daily_trips", *(f"f{i}" for i in range(1, 8))]
CUSTOMER_FEATURES = ["c_spend", "c_orders", "c_f1", "c_f2", "c_f3"]
START = datetime(2024, 1, 1, tzinfo=UTC)


def definitions(data: Path) -> list[object]:
    from shipyard.features import (
        Entity,
        FeatureView,
        Field,
        FileSource,
        PushSource,
        ValueType,
    )
    from shipyard.features.types import Float32, Int64

    driver = Entity(name="driver", join_keys=["driver_id"], value_type=ValueType.INT64)
    customer = Entity(name="customer", join_keys=["customer_id"], value_type=ValueType.INT64)
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

    return [
        driver,
        customer,
        push_source,
        FeatureView(
            name="driver_stats",
            entities=[driver],
            ttl=timedelta(minutes=90),
            schema=fields(DRIVER_FEATURES),
            source=push_source,
            online=True,
        ),
        FeatureView(
            name="customer_stats",
            entities=[customer],
            ttl=timedelta(hours=8),
            schema=fields(CUSTOMER_FEATURES),
            source=customer_source,
            online=True,
        ),
    ]


def main() -> None:
    work, size, workload, n, online = (
        Path(sys.argv[1]),
        sys.argv[2],
        sys.argv[3],
        int(sys.argv[4]),
        sys.argv[5],
    )
    home = Path(tempfile.mkdtemp(prefix="shipyard-features-", dir=work))
    os.environ["SHIPYARD_HOME"] = str(home)
    from shipyard.features import FeatureStore

    online_url = f"sqlite:///{home / 'online.db'}" if online == "sqlite" else online
    store = FeatureStore(online_url=online_url)
    store.apply(definitions(work / "data" / size))
    out: dict[str, object] = {}
    if workload in ("pit1", "pit2"):
        entity = pq.read_table(work / "data" / size / f"entity_{n}.parquet")
        features = [f"driver_stats:{f}" for f in DRIVER_FEATURES]
        if workload == "pit2":
            features += [f"customer_stats:{f}" for f in CUSTOMER_FEATURES]
        else:
            entity = entity.drop(["customer_id"])
        start = time.perf_counter()
        result = store.get_historical_features(entity, features).to_arrow()
        out["seconds"] = time.perf_counter() - start
        out["rows"] = result.num_rows
        out["null_conv_rate"] = result.column("conv_rate").null_count
        pq.write_table(
            result.select(["driver_id", "event_timestamp", *DRIVER_FEATURES]),
            work / f"result-{workload}-{n}.parquet",
        )
    elif workload == "materialize":
        start = time.perf_counter()
        store.materialize(START, START + timedelta(hours=721))
        out["seconds"] = time.perf_counter() - start
    elif workload == "online":
        store.write_to_online_store("driver_stats", fresh_rows(work / "data" / size).to_pandas())
        features = [f"driver_stats:{f}" for f in DRIVER_FEATURES]
        rows = [{"driver_id": i % 1000 + 1} for i in range(n)]
        timings = []
        for _ in range(1000):
            start = time.perf_counter()
            store.get_online_features(features, rows).to_dict()
            timings.append(time.perf_counter() - start)
        timings.sort()
        out["p50_ms"] = timings[len(timings) // 2] * 1000
        out["p99_ms"] = timings[int(len(timings) * 0.99)] * 1000
        out["seconds"] = sum(timings)
    elif workload == "push":
        frame = pq.read_table(work / "data" / size / "driver_stats.parquet").slice(0, n)
        frame = frame.to_pandas()
        start = time.perf_counter()
        store.push("driver_push", frame)
        out["seconds"] = time.perf_counter() - start
    else:
        raise SystemExit(f"unknown workload {workload}")
    out["peak_rss_mb"] = peak_rss_mb()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
