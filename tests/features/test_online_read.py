"""Online reads through the FeatureStore: feature references, services (objects or
names), statuses, full feature names, and on-demand features computed from request data
and fetched values."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from test_online_support import T0, driver, driver_view, feature_store_on, pair_view, rows

from shipyard.errors import InvalidArgumentError, NotFoundError
from shipyard.features.definitions import FeatureService, Field
from shipyard.features.on_demand import OnDemandFeatureView, RequestSource
from shipyard.features.online import FieldStatus
from shipyard.features.online_read import OnlineResponse, get_online_features
from shipyard.features.types import Float64

NOW = datetime.now(UTC)


def with_bonus(df: pd.DataFrame) -> pd.DataFrame:
    """On-demand UDF: a stored feature plus a request field."""
    return pd.DataFrame({"rate_plus_bonus": df["conv_rate"] + df["bonus"]})


def _on_demand(view: Any) -> OnDemandFeatureView:
    return OnDemandFeatureView(
        name="driver_bonus",
        sources=[view[["conv_rate"]], RequestSource("request", (Field("bonus", Float64),))],
        schema=[Field("rate_plus_bonus", Float64)],
        udf=with_bonus,
    )


@pytest.fixture(params=["sqlite", "redis"])
def feature_store(
    request: pytest.FixtureRequest, tmp_path: Path, fresh_sqlite_url: str, artifacts_url: str
) -> Iterator[Any]:
    """``driver_stats`` (rows for drivers 1 and 2 written now, 3 written 3 h ago, TTL
    2 h), a second view ``other`` sharing feature names, an on-demand view and a service."""
    view = driver_view()
    other = driver_view("other")
    service = FeatureService(name="driver_model", features=[view[["trips", "city"]]])
    objects = [driver, view, other, _on_demand(view), service]
    with feature_store_on(
        request.param, tmp_path, fresh_sqlite_url, artifacts_url, objects
    ) as store:
        table = rows([1, 2, 3], [NOW, NOW, NOW - timedelta(hours=3)])
        store.online_store.write(view, table)
        store.online_store.write(other, rows([1], [NOW], trips=[99]))
        yield store


def test_features_by_reference_with_statuses(feature_store: Any) -> None:
    response = get_online_features(
        feature_store,
        ["driver_stats:trips", "driver_stats:conv_rate"],
        [{"driver_id": 1}, {"driver_id": 3}, {"driver_id": 4}],
    )
    assert response.to_dict() == {
        "driver_id": [1, 3, 4],
        "trips": [10, None, None],
        "conv_rate": [0.125, None, None],
    }
    assert response.statuses["trips"] == [
        FieldStatus.PRESENT,
        FieldStatus.OUTSIDE_TTL,
        FieldStatus.NOT_FOUND,
    ]
    assert response.feature_names == ["trips", "conv_rate"]
    assert response.event_timestamps["trips"][2] is None
    assert list(response.to_df().columns) == ["driver_id", "trips", "conv_rate"]


def test_services_by_object_or_by_name_give_the_same_answer(feature_store: Any) -> None:
    service = feature_store.get_feature_service("driver_model")
    by_object = get_online_features(feature_store, service, [{"driver_id": 2}])
    by_name = get_online_features(feature_store, "driver_model", [{"driver_id": 2}])
    assert (
        by_object.to_dict()
        == by_name.to_dict()
        == {
            "driver_id": [2],
            "trips": [20],
            "city": ["city-2"],
        }
    )


def test_the_facade_reads_through_the_same_path(feature_store: Any) -> None:
    response = feature_store.get_online_features(["driver_stats:city"], [{"driver_id": 1}])
    assert isinstance(response, OnlineResponse)
    assert response.to_dict() == {"driver_id": [1], "city": ["city-1"]}


def test_clashing_names_need_full_feature_names(feature_store: Any) -> None:
    refs = ["driver_stats:trips", "other:trips"]
    with pytest.raises(InvalidArgumentError, match="full_feature_names=True"):
        get_online_features(feature_store, refs, [{"driver_id": 1}])
    response = get_online_features(feature_store, refs, [{"driver_id": 1}], full_feature_names=True)
    assert response.to_dict() == {
        "driver_id": [1],
        "driver_stats__trips": [10],
        "other__trips": [99],
    }


def test_on_demand_features_combine_request_data_and_stored_values(feature_store: Any) -> None:
    response = get_online_features(
        feature_store,
        ["driver_bonus:rate_plus_bonus"],
        [{"driver_id": 1, "bonus": 1.0}, {"driver_id": 2, "bonus": 2.0}],
    )
    assert response.to_dict() == {"driver_id": [1, 2], "rate_plus_bonus": [1.125, 2.25]}
    assert response.statuses["rate_plus_bonus"] == [FieldStatus.PRESENT] * 2


def test_on_demand_features_need_their_request_fields(feature_store: Any) -> None:
    with pytest.raises(InvalidArgumentError, match="request field 'bonus'"):
        get_online_features(feature_store, ["driver_bonus:rate_plus_bonus"], [{"driver_id": 1}])


@pytest.mark.parametrize(
    ("features", "rows_", "error", "message"),
    [
        (["driver_stats:trip"], [{"driver_id": 1}], InvalidArgumentError, "Did you mean 'trips'"),
        (["driver_stats"], [{"driver_id": 1}], InvalidArgumentError, "is not 'view:feature'"),
        (["nope:trips"], [{"driver_id": 1}], NotFoundError, "nope"),
        (["driver_stats:trips"], [{"driver": 1}], InvalidArgumentError, r"lacks join key\(s\)"),
        ([], [{"driver_id": 1}], InvalidArgumentError, "non-empty list"),
        (["driver_stats:trips"], [{"driver_id": "x"}], InvalidArgumentError, "integer"),
    ],
)
def test_bad_requests_say_what_is_wrong(
    feature_store: Any, features: Any, rows_: Any, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        get_online_features(feature_store, features, rows_)


def test_composite_keys_take_every_join_key(
    tmp_path: Path, fresh_sqlite_url: str, artifacts_url: str
) -> None:
    from shipyard.features.definitions import Entity, ValueType

    customer = Entity(name="customer", join_keys=["customer_id"], value_type=ValueType.STRING)
    view = pair_view()
    with feature_store_on(
        "sqlite", tmp_path, fresh_sqlite_url, artifacts_url, [driver, customer, view]
    ) as store:
        import pyarrow as pa

        store.online_store.write(
            view,
            pa.table(
                {
                    "driver_id": [1],
                    "customer_id": ["c"],
                    "event_timestamp": pa.array([T0], pa.timestamp("us", tz="UTC")),
                    "spend": [3.5],
                }
            ),
        )
        response = get_online_features(
            store, ["pair_stats:spend"], [{"driver_id": 1, "customer_id": "c"}]
        )
        assert response.to_dict() == {"driver_id": [1], "customer_id": ["c"], "spend": [3.5]}


def test_a_service_can_hold_on_demand_features(feature_store: Any) -> None:
    view = feature_store.get_feature_view("driver_stats")
    bonus = feature_store.get_on_demand_feature_view("driver_bonus")
    service = FeatureService(name="with_bonus", features=[view[["trips"]], bonus])
    response = get_online_features(feature_store, service, [{"driver_id": 2, "bonus": 0.5}])
    assert response.to_dict() == {"driver_id": [2], "trips": [20], "rate_plus_bonus": [0.75]}
