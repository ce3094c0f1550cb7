"""Feature definitions: Feast's names, validation that names object and field, specs."""

from __future__ import annotations

from datetime import timedelta

import pyarrow as pa
import pytest

from shipyard.errors import InvalidArgumentError
from shipyard.features.definitions import (
    Entity,
    FeatureService,
    FeatureView,
    Field,
    OnDemandFeatureView,
    RequestSource,
    definition_from_spec,
    on_demand_feature_view,
    view_from_spec,
)
from shipyard.features.sources import FileSource, KafkaSource, PushSource, SqlSource
from shipyard.features.transforms import (
    Normalize,
    PythonTransform,
    apply_to_rows,
    transform_from_spec,
)
from shipyard.features.types import Float32, Float64, Int64, String, ValueType

driver = Entity(name="driver", join_keys=["driver_id"], value_type=ValueType.INT64)
files = FileSource(path="data/driver_stats.parquet", timestamp_field="event_timestamp")


def stats_view(**overrides: object) -> FeatureView:
    values: dict[str, object] = {
        "name": "driver_stats",
        "entities": [driver],
        "schema": [Field("conv_rate", Float32), Field("trips", Int64)],
        "source": files,
        "ttl": timedelta(hours=2),
    }
    values.update(overrides)
    return FeatureView(**values)  # type: ignore[arg-type]


def double(table: pa.Table) -> pa.Table:
    return table


def test_seed_style_definitions_work() -> None:
    # The guide's Feast code, with the older event_timestamp_column spelling.
    source = FileSource(path="data/driver_stats.parquet", event_timestamp_column="event_timestamp")
    entity = Entity(name="driver", value_type=ValueType.INT64, description="Driver ID")
    assert entity.join_keys == ("driver",)
    view = FeatureView(
        name="driver_stats_fv",
        entities=["driver"],
        schema=[Field(name="conv_rate", dtype=Float32), Field(name="avg_daily_trips", dtype=Int64)],
        source=source,
        ttl=timedelta(hours=24),
        online=True,
    )
    assert view.join_keys == []  # resolved against registered entities on apply
    assert view.with_entities([entity]).join_keys == ["driver"]
    assert view.feature_refs == ["driver_stats_fv:conv_rate", "driver_stats_fv:avg_daily_trips"]


def test_join_key_fields_in_schema_are_not_features() -> None:
    view = stats_view(schema=[Field("driver_id", Int64), Field("conv_rate", Float32)])
    assert view.feature_names == ["conv_rate"]
    assert [(c.name, c.dtype) for c in view.entity_columns] == [("driver_id", Int64)]


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (
            lambda: stats_view(ttl=5),
            r"FeatureView 'driver_stats': field 'ttl' must be a datetime.timedelta",
        ),
        (
            lambda: stats_view(entities=[]),
            r"FeatureView 'driver_stats': field 'entities' must be a non-empty",
        ),
        (lambda: stats_view(name="bad name"), r"FeatureView 'bad name': field 'name'"),
        (
            lambda: stats_view(schema=[Field("a", Float32), Field("a", Int64)]),
            r"field 'schema' lists 'a' twice",
        ),
        (lambda: Field("conv-rate", Float32), r"Field 'conv-rate': field 'name'"),
        (lambda: Field("x", "float"), r"Field 'x': field 'dtype'"),  # type: ignore[arg-type]
        (lambda: Entity("driver", join_keys="driver_id"), r"Entity 'driver': field 'join_keys'"),  # type: ignore[arg-type]
        (
            lambda: FileSource("x.parquet", file_format="orc"),
            r"FileSource 'x.parquet': field 'file_format'",
        ),  # type: ignore[arg-type]
        (
            lambda: SqlSource("SELECT 1", "mysql://h/db"),
            r"SqlSource 'sql': field 'url' has scheme 'mysql'",
        ),
        (lambda: KafkaSource("k", "", "localhost:9092"), r"KafkaSource 'k': field 'topic'"),
        (lambda: PushSource("p", batch_source=None), r"PushSource 'p': field 'batch_source'"),  # type: ignore[arg-type]
        (lambda: FeatureService("svc", []), r"FeatureService 'svc': field 'features'"),
        (
            lambda: stats_view()[["nope"]],
            r"FeatureView 'driver_stats': field 'features' has no \['nope'\]",
        ),
        (lambda: Normalize({"a": 1.0}, {"a": 0.0}), r"'stds' must be finite and non-zero"),
    ],
)
def test_validation_names_object_and_field(build: object, message: str) -> None:
    with pytest.raises(InvalidArgumentError, match=message):
        build()  # type: ignore[operator]


def test_view_spec_round_trips_with_transform() -> None:
    kafka = KafkaSource(
        name="driver_events",
        topic="raw",
        bootstrap_servers="localhost:9092",
        batch_source=files,
        output_topic="processed_features",
        dead_letter_topic="raw-dlq",
    )
    view = stats_view(
        source=kafka,
        transform=Normalize(
            means={"conv_rate": 0.5, "trips": 10.0}, stds={"conv_rate": 0.1, "trips": 2.0}
        ),
        tags={"team": "rides"},
        owner="ml@example.com",
    )
    again = view_from_spec(view.to_spec())
    assert again == view
    assert again.transform == view.transform
    assert again.source == kafka
    assert again.batch_source == files


def test_normalize_applies_seed_transform_from_a_list_column() -> None:
    normalize = Normalize(
        means={"a": 1.0, "b": 10.0}, stds={"a": 2.0, "b": 5.0}, from_list="features"
    )
    rows = [{"id": 7, "features": [3.0, 20.0], "timestamp": "2024-01-01T00:00:00Z"}]
    assert apply_to_rows(normalize, rows) == [
        {"id": 7, "timestamp": "2024-01-01T00:00:00Z", "a": 1.0, "b": 2.0}
    ]
    assert transform_from_spec(normalize.to_spec()) == normalize


def test_python_transform_is_stored_by_reference_with_digest() -> None:
    transform = PythonTransform.of(double)
    assert transform.ref == f"{__name__}:double"
    assert len(transform.digest) == 64
    assert stats_view(transform=f"{__name__}:double").transform == transform
    with pytest.raises(InvalidArgumentError, match="no importable name"):
        stats_view(transform=lambda t: t)


@on_demand_feature_view(
    sources=[stats_view()[["trips"]], RequestSource("req", [Field("bonus", Float64)])],
    schema=[Field("total", Float64)],
)
def total(frame):  # type: ignore[no-untyped-def]
    return frame.assign(total=frame["trips"] + frame["bonus"])[["total"]]


def test_on_demand_view_and_service_specs_resolve_views() -> None:
    import pandas as pd

    view = stats_view()
    assert isinstance(total, OnDemandFeatureView)
    assert total.source_refs == ["driver_stats:trips"]
    service = FeatureService("model", [view[["conv_rate"]], total])
    assert service.feature_refs == ["driver_stats:conv_rate", "total:total"]
    views = {"driver_stats": view}
    odfv = definition_from_spec(total.to_spec(), views)
    assert isinstance(odfv, OnDemandFeatureView) and odfv.feature_names == ["total"]
    frame = pd.DataFrame({"trips": [1, 2], "bonus": [0.5, 1.0]})
    assert odfv.call_udf(frame)["total"].tolist() == [1.5, 3.0]  # imported by reference
    rebuilt = definition_from_spec(service.to_spec(), {**views, "total": odfv})
    assert rebuilt == service


def test_entity_value_type_gives_key_dtype() -> None:
    user = Entity("user", value_type=ValueType.STRING)
    view = stats_view(entities=[user])
    assert [(c.name, c.dtype) for c in view.entity_columns] == [("user", String)]
