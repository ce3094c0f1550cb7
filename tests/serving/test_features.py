"""Online features at inference: entity ids in, the model's feature service fills the row."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from shipyard.config import Settings
from shipyard.testing import test_client

FEATURES = ["conv_rate", "acc_rate", "avg_daily_trips"]


@pytest.fixture
def feature_store(settings: Settings, tmp_path: Path) -> Any:
    """driver_stats (3 features) behind the service 'driver_activity', two drivers online."""
    from shipyard.features import (
        Entity,
        FeatureService,
        FeatureStore,
        FeatureView,
        Field,
        FileSource,
        Float64,
        Int64,
        ValueType,
    )

    now = datetime.now(UTC)
    stamps = pa.array([now, now], pa.timestamp("us", tz="UTC"))
    source = tmp_path / "driver_stats.parquet"
    pq.write_table(
        pa.table(
            {
                "driver_id": [1001, 1002],
                "event_timestamp": stamps,
                "conv_rate": [0.5, 0.9],
                "acc_rate": [0.7, 0.1],
                "avg_daily_trips": [12, 300],
            }
        ),
        source,
    )
    driver = Entity(name="driver", join_keys=["driver_id"], value_type=ValueType.INT64)
    view = FeatureView(
        name="driver_stats",
        entities=[driver],
        schema=[
            Field(name="conv_rate", dtype=Float64),
            Field(name="acc_rate", dtype=Float64),
            Field(name="avg_daily_trips", dtype=Int64),
        ],
        source=FileSource(path=str(source), timestamp_field="event_timestamp"),
        ttl=timedelta(days=1),
    )
    store = FeatureStore(settings)
    store.apply([driver, view, FeatureService(name="driver_activity", features=[view])])
    store.write_to_online_store(
        "driver_stats",
        pd.DataFrame(
            {
                "driver_id": [1001, 1002],
                "event_timestamp": [now, now],
                "conv_rate": [0.5, 0.9],
                "acc_rate": [0.7, 0.1],
                "avg_daily_trips": [12, 300],
            }
        ),
    )
    yield store
    store.close()


@pytest.fixture
def driver_model() -> Any:
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    X = np.column_stack([rng.random(200), rng.random(200), rng.integers(0, 400, 200)])
    y = (X[:, 0] + X[:, 2] / 400 > 1).astype(int)
    return LogisticRegression(max_iter=1000).fit(X, y), X


def test_entities_are_resolved_through_the_feature_service(
    feature_store: Any, driver_model: Any, register: Any, make_app: Any
) -> None:
    model, X = driver_model
    register(model, tags={"shipyard.feature_service": "driver_activity"}, input_example=X[:5])
    with test_client(make_app()) as client:
        one = client.post("/predict", json={"entities": {"driver_id": 1001}})
        assert one.status_code == 200, one.text
        assert one.json()["prediction"] == model.predict([[0.5, 0.7, 12]])[0]
        many = client.post(
            "/predict", json={"entities": [{"driver_id": 1002}, {"driver_id": 1001}]}
        )
        expected = model.predict([[0.9, 0.1, 300], [0.5, 0.7, 12]]).tolist()
        assert many.json()["predictions"] == expected
        metadata = client.get("/v2/models/fraud").json()
        assert metadata["parameters"]["feature_service"] == "driver_activity"


def test_unknown_entities_and_bad_keys_are_clear_400s(
    feature_store: Any, driver_model: Any, register: Any, make_app: Any
) -> None:
    model, X = driver_model
    register(model, tags={"shipyard.feature_service": "driver_activity"}, input_example=X[:5])
    with test_client(make_app()) as client:
        unknown = client.post("/predict", json={"entities": {"driver_id": 9999}})
        assert unknown.status_code == 400
        assert "missing" in unknown.json()["error"]["message"]
        bad = client.post("/predict", json={"entities": {"driver_id": [1]}})
        assert bad.status_code == 400
        assert "entity keys are strings or integers" in bad.json()["error"]["message"]
        empty = client.post("/predict", json={"entities": []})
        assert empty.status_code == 400
