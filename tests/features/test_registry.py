"""Plan and apply against the metadata store: versions, diffs, refusals, on every backend."""

from __future__ import annotations

from datetime import timedelta

import pytest

from shipyard.config import Settings
from shipyard.errors import InvalidArgumentError, NotFoundError
from shipyard.features.definitions import Entity, FeatureService, FeatureView, Field
from shipyard.features.registry import IncompatibleChangeError
from shipyard.features.sources import FileSource, PushSource
from shipyard.features.store import FeatureStore
from shipyard.features.types import Float32, Float64, Int64, ValueType


@pytest.fixture
def store(db_url: str, workspace: str, tmp_path) -> FeatureStore:  # type: ignore[no-untyped-def]
    settings = Settings(home=tmp_path / "home", db=db_url)
    return FeatureStore(settings, workspace=workspace, registry_ttl=0)


def definitions(ttl_hours: int = 2, dtype=Float32, keys=("driver_id",)):  # type: ignore[no-untyped-def]
    driver = Entity("driver", join_keys=list(keys), value_type=ValueType.INT64)
    source = FileSource("data/driver_stats.parquet", "event_timestamp", "created")
    stats = FeatureView(
        name="driver_stats",
        entities=[driver],
        schema=[Field("conv_rate", dtype), Field("trips", Int64)],
        source=source,
        ttl=timedelta(hours=ttl_hours),
        owner="ml@example.com",
    )
    service = FeatureService("driver_model", [stats[["conv_rate"]]])
    return driver, stats, service


def test_first_apply_adds_everything_at_version_one(store: FeatureStore) -> None:
    plan = store.apply(definitions())
    assert {(i.kind, i.name, i.action, i.new_version) for i in plan.items} == {
        ("entity", "driver", "added", 1),
        ("feature_view", "driver_stats", "added", 1),
        ("feature_service", "driver_model", "added", 1),
    }
    assert store.get_feature_view("driver_stats").ttl == timedelta(hours=2)
    assert store.get_feature_service("driver_model").feature_refs == ["driver_stats:conv_rate"]
    assert store.plan(definitions()).summary() == "0 added, 0 changed, 0 removed, 3 unchanged"


def test_change_bumps_version_and_keeps_history(store: FeatureStore) -> None:
    store.apply(definitions())
    plan = store.plan(definitions(ttl_hours=3))
    (changed,) = plan.changed
    assert (changed.name, changed.version, changed.new_version) == ("driver_stats", 1, 2)
    assert changed.changes == ("ttl_seconds: 7200.0 -> 10800.0",)
    store.apply(definitions(ttl_hours=3))
    assert store.get_feature_view("driver_stats").ttl == timedelta(hours=3)
    assert store.get_feature_view("driver_stats", version=1).ttl == timedelta(hours=2)
    history = store.registry.history("feature_view", "driver_stats")
    assert [(h["version"], h["action"]) for h in history] == [(1, "added"), (2, "changed")]


def test_dtype_change_refused_unless_forced(store: FeatureStore) -> None:
    store.apply(definitions())
    with pytest.raises(
        IncompatibleChangeError, match=r"field 'conv_rate' changes dtype Float32 -> Float64"
    ):
        store.apply(definitions(dtype=Float64))
    assert store.get_feature_view("driver_stats").schema[0].dtype == Float32
    store.apply(definitions(dtype=Float64), force=True)
    assert store.get_feature_view("driver_stats").schema[0].dtype == Float64


def test_join_key_change_refused(store: FeatureStore) -> None:
    store.apply(definitions())
    plan = store.plan(definitions(keys=("driver_uuid",)))
    assert any("join keys change ['driver_id'] -> ['driver_uuid']" in p for p in plan.problems)
    with pytest.raises(IncompatibleChangeError, match="--force"):
        store.apply(definitions(keys=("driver_uuid",)))


def test_removing_a_view_a_service_uses_is_refused(store: FeatureStore) -> None:
    driver, stats, service = definitions()
    store.apply([driver, stats, service])
    # A repo that keeps the service but drops its view (specs as an API client sends them).
    specs = [driver.to_spec(), service.to_spec()]
    plan = store.registry.plan(specs, prune=True)
    assert [(i.name, i.action) for i in plan.removed] == [("driver_stats", "removed")]
    with pytest.raises(
        IncompatibleChangeError, match="still used by feature_service 'driver_model'"
    ):
        store.registry.apply(specs, prune=True)
    assert store.registry.get("feature_view", "driver_stats").version == 1
    # Removing the service along with the view is fine.
    removed = store.apply([driver], prune=True)
    assert {i.name for i in removed.removed} == {"driver_stats", "driver_model"}
    store.refresh()
    with pytest.raises(NotFoundError):
        store.get_feature_view("driver_stats")


def test_service_reading_a_dropped_feature_is_refused(store: FeatureStore) -> None:
    driver, stats, service = definitions()
    store.apply([driver, stats, service])
    narrower = FeatureView(
        name="driver_stats",
        entities=[driver],
        schema=[Field("trips", Int64)],
        source=stats.source,
        ttl=stats.ttl,
    )
    with pytest.raises(IncompatibleChangeError, match=r"reads features \['conv_rate'\]"):
        store.registry.apply([narrower.to_spec()])


def test_version_numbers_are_not_reused_after_removal(store: FeatureStore) -> None:
    driver, stats, _ = definitions()
    store.apply([driver, stats])
    store.apply([driver], prune=True)
    plan = store.apply([driver, stats])
    assert plan.added[0].new_version == 1  # what the plan promised for a new object
    assert store.registry.get("feature_view", "driver_stats").version == 3


def test_unknown_entity_reference_is_an_error(store: FeatureStore) -> None:
    view = FeatureView(
        name="v", entities=["ghost"], schema=[Field("x", Float32)], source=FileSource("x.parquet")
    )
    with pytest.raises(InvalidArgumentError, match="unknown entities"):
        store.apply([view])


def test_entity_named_by_string_resolves_from_registry(store: FeatureStore) -> None:
    driver, _, _ = definitions()
    store.apply([driver])
    view = FeatureView(
        name="by_name",
        entities=["driver"],
        schema=[Field("x", Float32)],
        source=FileSource("x.parquet"),
    )
    store.apply([view])
    assert store.get_feature_view("by_name").join_keys == ["driver_id"]


def test_push_source_is_registered_and_found(store: FeatureStore) -> None:
    driver, _, _ = definitions()
    push = PushSource("driver_push", FileSource("data/driver_stats.parquet"))
    view = FeatureView(name="pushed", entities=[driver], schema=[Field("x", Float32)], source=push)
    store.apply([view])
    assert store.get_data_source("driver_push") == push
    assert store.registry.get("push_source", "driver_push").version == 1


def test_workspaces_do_not_see_each_other(store: FeatureStore, db_url: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    store.apply(definitions())
    other = FeatureStore(Settings(home=tmp_path / "home", db=db_url), registry_ttl=0)
    assert other.list_feature_views() == []


def test_forced_breaking_change_does_not_hide_other_definitions(store: FeatureStore) -> None:
    driver, stats, service = definitions()
    store.apply([driver, stats, service])
    narrower = FeatureView(
        name="driver_stats", entities=[driver], schema=[Field("trips", Int64)], source=stats.source
    )
    store.registry.apply([narrower.to_spec()], force=True)
    store.refresh()
    assert store.get_feature_view("driver_stats").feature_names == ["trips"]
    with pytest.raises(NotFoundError, match="driver_model"):
        store.get_feature_service("driver_model")
