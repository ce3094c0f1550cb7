"""FeatureStore end to end: services, on-demand views, sources, offline log, lineage."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from shipyard.config import Settings
from shipyard.errors import InvalidArgumentError
from shipyard.features.definitions import (
    Entity,
    FeatureService,
    FeatureView,
    Field,
    OnDemandFeatureView,
    RequestSource,
)
from shipyard.features.sources import FileSource, PushSource, SqlSource
from shipyard.features.store import FeatureStore
from shipyard.features.types import Float32, Float64, Int64, ValueType

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def trip_ratio(frame: pd.DataFrame) -> pd.DataFrame:
    """An on-demand feature: trips relative to what the request expects."""
    return pd.DataFrame({"ratio": frame["trips"] / frame["expected_trips"]})


@pytest.fixture
def settings(fresh_sqlite_url: str, tmp_path: Path) -> Settings:
    return Settings(
        home=tmp_path / "home", db=fresh_sqlite_url, artifacts=(tmp_path / "art").as_uri()
    )


@pytest.fixture
def driver_file(tmp_path: Path) -> Path:
    path = tmp_path / "driver_stats.parquet"
    hours = [T0 + timedelta(hours=h) for h in range(4)]
    pq.write_table(
        pa.table(
            {
                "driver_id": [1, 2, 1, 2],
                "event_timestamp": hours,
                "created": hours,
                "conv_rate": pa.array([0.1, 0.2, 0.3, 0.4], pa.float32()),
                "trips": [10, 20, 30, 40],
            }
        ),
        path,
    )
    return path


@pytest.fixture
def store(settings: Settings, driver_file: Path) -> Iterator[FeatureStore]:
    driver = Entity("driver", join_keys=["driver_id"], value_type=ValueType.INT64)
    stats = FeatureView(
        name="driver_stats",
        entities=[driver],
        schema=[Field("conv_rate", Float32), Field("trips", Int64)],
        source=FileSource(str(driver_file), created_timestamp_column="created"),
        ttl=timedelta(hours=2),
    )
    ratio = OnDemandFeatureView(
        name="trip_ratio",
        sources=[stats[["trips"]], RequestSource("request", [Field("expected_trips", Int64)])],
        schema=[Field("ratio", Float64)],
        udf=trip_ratio,
    )
    service = FeatureService("driver_model", [stats[["conv_rate"]], ratio])
    with FeatureStore(settings, registry_ttl=0) as made:
        made.apply([driver, stats, ratio, service])
        yield made


def entity_df() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "driver_id": [1, 2, 1, 3],
            "event_timestamp": [T0 + timedelta(hours=h, minutes=30) for h in (0, 1, 2, 2)],
            "expected_trips": [5, 10, 10, 1],
            "label": [1, 0, 1, 0],
        }
    )


def test_service_by_name_gives_features_and_on_demand_values(store: FeatureStore) -> None:
    frame = store.get_historical_features(entity_df(), "driver_model").to_df()
    assert list(frame.columns) == [
        "driver_id",
        "event_timestamp",
        "expected_trips",
        "label",
        "conv_rate",
        "ratio",
    ]
    assert frame["conv_rate"].astype(float).round(3).tolist()[:3] == [0.1, 0.2, 0.3]
    assert pd.isna(frame["conv_rate"].iloc[3])
    assert frame["ratio"].tolist()[:3] == [2.0, 2.0, 3.0]


def test_references_with_full_feature_names(store: FeatureStore) -> None:
    table = store.get_historical_features(
        entity_df(), ["driver_stats:trips", "driver_stats:conv_rate"], full_feature_names=True
    ).to_arrow()
    assert table.column_names[-2:] == ["driver_stats__trips", "driver_stats__conv_rate"]
    assert table.schema.field("driver_stats__conv_rate").type == pa.float32()


def test_unknown_feature_suggests_a_close_name(store: FeatureStore) -> None:
    with pytest.raises(InvalidArgumentError, match=r"no feature 'trip'\. Did you mean 'trips'"):
        store.get_historical_features(entity_df(), ["driver_stats:trip"])


def test_missing_join_key_is_named(store: FeatureStore) -> None:
    frame = entity_df().drop(columns=["driver_id"])
    with pytest.raises(InvalidArgumentError, match=r"lacks the join key\(s\) \['driver_id'\]"):
        store.get_historical_features(frame, ["driver_stats:trips"]).to_arrow()


def test_save_dataset_writes_digest_and_logs_lineage(
    store: FeatureStore, settings: Settings, tmp_path: Path
) -> None:
    import shipyard
    from shipyard.client import Client
    from shipyard.tracking import fluent

    client = Client(settings)
    fluent.use_client(client)
    try:
        with shipyard.start_run() as run:
            job = store.get_historical_features(entity_df(), "driver_model")
            dataset = job.save_dataset(str(tmp_path / "train.parquet"))
    finally:
        fluent.use_client(None)
    data = (tmp_path / "train.parquet").read_bytes()
    recorded = (tmp_path / "train.parquet.sha256").read_text().split()[0]
    assert recorded == hashlib.sha256(data).hexdigest()
    assert pq.read_table(tmp_path / "train.parquet").num_rows == 4
    stored = client.get_run(run.info.run_id)
    assert [(i.dataset.name, i.dataset.digest, i.context) for i in stored.inputs] == [
        ("train", dataset.digest, "training")
    ]
    assert stored.data.tags["shipyard.features.train"] == "driver_stats:conv_rate,trip_ratio:ratio"


def test_save_dataset_by_name_to_a_given_run(store: FeatureStore, settings: Settings) -> None:
    from shipyard.client import Client

    client = Client(settings)
    run = client.create_run(client.create_experiment("features"))
    dataset = store.get_historical_features(entity_df(), "driver_model").save_dataset(
        "drivers-v1", run_id=run.info.run_id
    )
    assert dataset.source.endswith("features/datasets/drivers-v1.parquet")
    assert client.get_run(run.info.run_id).inputs[0].dataset.digest == dataset.digest


def test_push_source_view_reads_its_offline_log(settings: Settings, driver_file: Path) -> None:
    from shipyard.features.offline_sources import offline_log_url

    driver = Entity("driver", join_keys=["driver_id"], value_type=ValueType.INT64)
    view = FeatureView(
        name="pushed_stats",
        entities=[driver],
        schema=[Field("trips", Int64)],
        source=PushSource("stats_push", FileSource(str(driver_file))),
    )
    log = Path(offline_log_url(settings.artifacts, "pushed_stats").removeprefix("file://"))
    log.mkdir(parents=True)
    later = T0 + timedelta(hours=10)
    pq.write_table(
        pa.table({"driver_id": [1], "event_timestamp": [later], "trips": [99]}),
        log / "part-1-abcdef12.parquet",
    )
    with FeatureStore(settings, registry_ttl=0) as store:
        store.apply([view])
        frame = pd.DataFrame(
            {"driver_id": [1, 1], "event_timestamp": [T0 + timedelta(hours=3), later]}
        )
        got = store.get_historical_features(frame, ["pushed_stats:trips"]).to_df()
    assert got["trips"].tolist() == [30, 99]


def test_duckdb_sql_source_and_csv_source(tmp_path: Path, driver_file: Path) -> None:
    import duckdb

    from shipyard.features.offline import ViewRequest, historical_features

    warehouse = tmp_path / "warehouse.duckdb"
    with duckdb.connect(str(warehouse)) as con:
        con.execute(f"CREATE TABLE stats AS SELECT * FROM read_parquet('{driver_file}')")
    csv = tmp_path / "stats.csv"
    pq.read_table(driver_file).to_pandas().to_csv(csv, index=False)
    driver = Entity("driver", join_keys=["driver_id"], value_type=ValueType.INT64)
    sources = [
        SqlSource("SELECT * FROM stats WHERE trips > 10", f"duckdb:///{warehouse}"),
        FileSource(str(csv), file_format="csv"),
    ]
    frame = entity_df()
    results = []
    for i, source in enumerate(sources):
        view = FeatureView(
            name=f"v{i}",
            entities=[driver],
            schema=[Field("trips", Int64)],
            source=source,
            ttl=timedelta(hours=2),
        )
        out = historical_features(frame, [ViewRequest(view, ("trips",))])
        results.append(out.column("trips").to_pylist())
    assert results == [[None, 20, 30, None], [10, 20, 30, None]]


def test_postgres_sql_source(postgres_database: str, driver_file: Path) -> None:
    import uuid

    import sqlalchemy as sa

    from shipyard.features.offline import ViewRequest, historical_features

    table = f"driver_src_{uuid.uuid4().hex[:8]}"
    engine = sa.create_engine(postgres_database)
    pq.read_table(driver_file).to_pandas().to_sql(table, engine, index=False)
    try:
        driver = Entity("driver", join_keys=["driver_id"], value_type=ValueType.INT64)
        view = FeatureView(
            name="pg",
            entities=[driver],
            schema=[Field("conv_rate", Float32)],
            source=SqlSource(
                f"SELECT * FROM {table}", postgres_database, created_timestamp_column="created"
            ),
            ttl=timedelta(hours=2),
        )
        out = historical_features(entity_df(), [ViewRequest(view, ("conv_rate",))])
    finally:
        # The session database is shared: leave no table the schema does not declare.
        with engine.begin() as conn:
            conn.execute(sa.text(f"DROP TABLE {table}"))
        engine.dispose()
    assert [None if v is None else round(v, 3) for v in out.column("conv_rate").to_pylist()] == [
        0.1,
        0.2,
        0.3,
        None,
    ]


def test_features_tour_example_runs(capsys: pytest.CaptureFixture[str]) -> None:
    import runpy

    tour = Path(__file__).resolve().parents[2] / "examples" / "features_tour.py"
    runpy.run_path(str(tour), run_name="__main__")
    out = capsys.readouterr().out
    assert "applied: 3 added, 0 changed, 0 removed, 0 unchanged" in out
    assert "training set: 500 rows" in out


def test_kafka_view_renames_batch_columns_to_the_stream_names(
    settings: Settings, driver_file: Path
) -> None:
    from shipyard.features.offline import ViewRequest, historical_features
    from shipyard.features.offline_sources import offline_log_url
    from shipyard.features.sources import KafkaSource

    driver = Entity("driver", join_keys=["driver_id"], value_type=ValueType.INT64)
    source = KafkaSource(
        name="driver_events",
        topic="driver_raw",
        bootstrap_servers="127.0.0.1:9092",
        timestamp_field="ts",
        batch_source=FileSource(str(driver_file), created_timestamp_column="created"),
    )
    view = FeatureView(
        name="streamed", entities=[driver], schema=[Field("trips", Int64)], source=source
    )
    log = Path(offline_log_url(settings.artifacts, "streamed").removeprefix("file://"))
    log.mkdir(parents=True)
    later = T0 + timedelta(hours=10)
    pq.write_table(
        pa.table({"driver_id": [2], "ts": [later], "trips": [77]}),
        log / "stream-driver_raw-0-00000000000000000000-00000000000000000000.parquet",
    )
    frame = pd.DataFrame({"driver_id": [2, 2], "event_timestamp": [T0 + timedelta(hours=3), later]})
    out = historical_features(
        frame, [ViewRequest(view, ("trips",))], artifacts_url=settings.artifacts
    )
    assert out.column("trips").to_pylist() == [40, 77]


def test_on_demand_view_without_its_request_data_is_refused(store: FeatureStore) -> None:
    frame = entity_df().drop(columns=["expected_trips"])
    with pytest.raises(InvalidArgumentError, match=r"needs request data \['expected_trips'\]"):
        store.get_historical_features(frame, "driver_model").to_arrow()
