"""Raw stream events against a view's schema, Normalize applied to them, replayed offsets
in the offline log, and the views a processor refuses: no broker needed."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shipyard.features.definitions import Entity, FeatureView, Field, KafkaSource, ValueType
from shipyard.features.offline_log import (
    append_offline_log,
    discard_uncommitted,
    offline_log_prefix,
    stream_part_name,
)
from shipyard.features.streaming_events import EventSchema, RejectedEvent
from shipyard.features.transforms import Normalize
from shipyard.features.types import Float32, Float64, String

MEANS = {"speed": 50.0, "accel": 1.5}
STDS = {"speed": 12.5, "accel": 0.25}


def make_view(transform: Any = None, **source: Any) -> FeatureView:
    driver = Entity(name="driver", join_keys=["driver_id"], value_type=ValueType.INT64)
    return FeatureView(
        name="driver_live",
        entities=[driver],
        schema=[Field("speed", Float64), Field("accel", Float32), Field("city", String)],
        source=KafkaSource(
            name="driver_events",
            topic="driver_raw",
            bootstrap_servers="127.0.0.1:9092",
            timestamp_field="event_timestamp",
            **source,
        ),
        ttl=timedelta(hours=1),
        transform=transform,
    )


def encode(event: dict[str, Any]) -> bytes:
    return json.dumps(event).encode()


GOOD = {
    "driver_id": 7,
    "event_timestamp": "2024-05-01T12:00:00Z",
    "speed": 62.5,
    "accel": 2,
    "city": "Lyon",
}


@pytest.mark.parametrize(
    ("payload", "kind", "message"),
    [
        (b"{not json", "malformed_json", "value is not JSON"),
        (None, "malformed_json", "message has no value"),
        (b"[1, 2]", "malformed_json", "must be a JSON object, not list"),
        (encode({**GOOD, "driver_id": "seven"}), "wrong_type", "'driver_id' must be Int64"),
        (encode({**GOOD, "driver_id": True}), "wrong_type", "'driver_id' must be Int64"),
        (encode({**GOOD, "driver_id": 2**63}), "wrong_type", "'driver_id' must be Int64"),
        (encode({k: v for k, v in GOOD.items() if k != "speed"}), "missing_field", "'speed'"),
        (encode({**GOOD, "speed": None}), "missing_field", "field 'speed' is null"),
        (encode({**GOOD, "speed": "fast"}), "wrong_type", "'speed' must be Float64"),
        (
            b'{"driver_id": 7, "event_timestamp": 1, "speed": NaN, "accel": 1, "city": "a"}',
            "wrong_type",
            "'speed' must be finite",
        ),
        (encode({**GOOD, "event_timestamp": "yesterday"}), "wrong_type", "not an ISO 8601"),
        (encode({k: v for k, v in GOOD.items() if k != "city"}), "missing_field", "'city'"),
        (encode({**GOOD, "city": 3}), "wrong_type", "'city' must be String"),
    ],
)
def test_decode_rejects_unusable_events_with_a_reason(
    payload: bytes | None, kind: str, message: str
) -> None:
    schema = EventSchema.for_view(make_view(Normalize(MEANS, STDS)))
    with pytest.raises(RejectedEvent, match=message) as caught:
        schema.decode(payload)
    assert caught.value.kind == kind


def test_decode_accepts_epoch_seconds_naive_times_and_null_features() -> None:
    schema = EventSchema.for_view(make_view(Normalize(MEANS, STDS)))
    row = schema.decode(encode({**GOOD, "event_timestamp": 1714564800, "city": None}))
    assert row["event_timestamp"] == datetime(2024, 5, 1, 12, tzinfo=UTC)
    assert row["city"] is None
    naive = schema.decode(encode({**GOOD, "event_timestamp": "2024-05-01T12:00:00"}))
    assert naive["event_timestamp"] == datetime(2024, 5, 1, 12, tzinfo=UTC)


def test_a_list_input_must_have_one_number_per_feature() -> None:
    transform = Normalize(MEANS, STDS, from_list="features")
    schema = EventSchema.for_view(make_view(transform))
    event = {"driver_id": 1, "event_timestamp": "2024-05-01T00:00:00Z", "city": "a"}
    assert schema.decode(encode({**event, "features": [1, 2]}))["features"] == [1, 2]
    with pytest.raises(RejectedEvent, match="must be a list of 2 numbers"):
        schema.decode(encode({**event, "features": [1]}))
    with pytest.raises(RejectedEvent, match=r"'features\[1\]' must be Float64"):
        schema.decode(encode({**event, "features": [1, "x"]}))


finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False)


@settings(max_examples=60, deadline=None)
@given(
    events=st.lists(
        st.tuples(st.integers(0, 10**6), finite, finite, st.integers(0, 10**9)),
        min_size=1,
        max_size=20,
    ),
    from_list=st.booleans(),
)
def test_normalized_rows_equal_x_minus_mean_over_std(
    events: list[tuple[int, float, float, int]], from_list: bool
) -> None:
    transform = Normalize(MEANS, STDS, from_list="features" if from_list else None)
    schema = EventSchema.for_view(make_view(transform))
    rows = []
    for driver, speed, accel, ts in events:
        raw: dict[str, Any] = {"driver_id": driver, "event_timestamp": ts, "city": "x"}
        raw.update({"features": [speed, accel]} if from_list else {"speed": speed, "accel": accel})
        rows.append(schema.decode(encode(raw)))
    table = schema.output_table(transform.apply(schema.raw_table(rows)))
    assert table.column_names == ["driver_id", "event_timestamp", "speed", "accel", "city"]
    assert table.schema.field("accel").type == pa.float32()
    for got, (driver, speed, accel, ts) in zip(table.to_pylist(), events, strict=True):
        assert got["driver_id"] == driver
        assert got["event_timestamp"] == datetime.fromtimestamp(ts, UTC)
        assert got["speed"] == pytest.approx((speed - 50.0) / 12.5, rel=1e-12, abs=1e-12)
        expected = (accel - 1.5) / 0.25
        assert math.isclose(got["accel"], expected, rel_tol=1e-6, abs_tol=1e-30)


def test_view_without_transform_requires_every_feature() -> None:
    schema = EventSchema.for_view(make_view())
    assert schema.decode(encode(GOOD))["accel"] == 2
    with pytest.raises(RejectedEvent, match="missing field 'accel'"):
        schema.decode(encode({k: v for k, v in GOOD.items() if k != "accel"}))


def _offline_table(first: int, count: int) -> pa.Table:
    return pa.table({"driver_id": list(range(first, first + count))})


def test_discard_uncommitted_removes_only_replayed_files_of_that_partition(
    tmp_path: Path,
) -> None:
    root = (tmp_path / "artifacts").as_uri()
    for topic, partition, first, last in [
        ("raw", 0, 0, 9),
        ("raw", 0, 10, 19),
        ("raw", 0, 20, 29),
        ("raw", 1, 10, 19),
        ("raw-1", 0, 10, 19),  # a topic whose name ends like a partition number
    ]:
        name = stream_part_name(topic, partition, first, last)
        append_offline_log(root, "v", _offline_table(first, last - first + 1), name=name)
    pushed = append_offline_log(root, "v", _offline_table(0, 3))
    assert pushed is not None and pushed.startswith(f"{offline_log_prefix('v')}/part-")

    dropped = discard_uncommitted(root, "v", "raw", 0, committed=10)

    assert sorted(Path(k).name for k in dropped) == [
        stream_part_name("raw", 0, 10, 19),
        stream_part_name("raw", 0, 20, 29),
    ]
    left = sorted(p.name for p in (tmp_path / "artifacts" / offline_log_prefix("v")).iterdir())
    assert left == sorted(
        [
            Path(pushed).name,
            stream_part_name("raw", 0, 0, 9),
            stream_part_name("raw", 1, 10, 19),
            stream_part_name("raw-1", 0, 10, 19),
        ]
    )
    assert append_offline_log(root, "v", _offline_table(0, 0)) is None


def test_stream_processor_refuses_views_it_cannot_stream(
    tmp_path: Path, fresh_sqlite_url: str
) -> None:
    from shipyard.config import Settings
    from shipyard.errors import InvalidArgumentError
    from shipyard.features.definitions import FileSource
    from shipyard.features.store import FeatureStore
    from shipyard.features.streaming import StreamProcessor

    driver = Entity(name="driver", join_keys=["driver_id"], value_type=ValueType.INT64)
    batch = FeatureView(
        name="driver_batch",
        entities=[driver],
        schema=[Field("speed", Float64)],
        source=FileSource(str(tmp_path / "stats.parquet"), timestamp_field="event_timestamp"),
    )
    store = FeatureStore(Settings(home=tmp_path / "home", db=fresh_sqlite_url))
    store.apply([driver, batch])
    with pytest.raises(InvalidArgumentError, match="reads a FileSource, not a KafkaSource"):
        StreamProcessor(store, "driver_batch")
    processor = StreamProcessor(store, "driver_batch", input_topic="t", bootstrap="h:9092")
    assert (processor.output_topic, processor.dead_letter_topic) == ("processed_features", "t.dlq")
    assert processor.group_id == "shipyard-features-driver_batch"


def test_kafka_settings_from_the_command_line() -> None:
    from shipyard.errors import InvalidArgumentError
    from shipyard.features.cli_stream import parse_kafka_settings

    assert parse_kafka_settings(["session.timeout.ms=6000", " acks = all"]) == {
        "session.timeout.ms": "6000",
        "acks": "all",
    }
    with pytest.raises(InvalidArgumentError, match="is not key=value"):
        parse_kafka_settings(["session.timeout.ms"])


def mph_to_kmh(table: pa.Table) -> pa.Table:
    """A Python transform: reads a raw field the view does not declare."""
    import pyarrow.compute as pc

    kmh = pc.multiply(table.column("speed_mph"), 1.609344)
    return table.append_column("speed", kmh).append_column("accel", table.column("speed_mph"))


def test_python_transform_sees_every_raw_field_and_must_produce_the_features() -> None:
    from shipyard.features.transforms import PythonTransform

    schema = EventSchema.for_view(make_view(PythonTransform.of(mph_to_kmh)))
    raw = {"driver_id": 3, "event_timestamp": 0, "speed_mph": 10.0, "city": "Oslo"}
    row = schema.decode(encode(raw))
    table = schema.output_table(mph_to_kmh(schema.raw_table([row])))
    assert table.to_pylist() == [
        {
            "driver_id": 3,
            "event_timestamp": datetime(1970, 1, 1, tzinfo=UTC),
            "speed": pytest.approx(16.09344),
            "accel": 10.0,
            "city": "Oslo",
        }
    ]
    with pytest.raises(RejectedEvent, match=r"transform output lacks \['speed', 'accel'\]"):
        schema.output_table(schema.raw_table([row]))
