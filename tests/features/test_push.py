"""Push: validated rows land in the online store and in the view's offline log, where
point-in-time joins see them; bad rows are refused with the column named."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from test_online_support import T0, driver, feature_store_on, push_view, rows

from shipyard.errors import InvalidArgumentError, NotFoundError
from shipyard.features.online import FieldStatus
from shipyard.features.push import push
from shipyard.store.artifacts import ArtifactStore


@pytest.fixture(params=["sqlite", "redis"])
def feature_store(
    request: pytest.FixtureRequest, tmp_path: Path, fresh_sqlite_url: str, artifacts_url: str
) -> Iterator[Any]:
    """A FeatureStore with ``driver_live`` fed by push source ``driver_push``, whose batch
    history holds one old row of driver 99."""
    history = tmp_path / "driver_live.parquet"
    pq.write_table(rows([99], [T0 - timedelta(days=30)]), history)
    view = push_view(batch_path=str(history))
    with feature_store_on(
        request.param, tmp_path, fresh_sqlite_url, artifacts_url, [driver, view]
    ) as store:
        yield store


def _online(store: Any, ids: list[int], feature: str = "trips") -> tuple[list[Any], list[Any]]:
    view = store.get_feature_view("driver_live")
    result = store.online_store.read(view, [feature], [(i,) for i in ids], now=T0)
    return result.values[feature], result.statuses[feature]


def _log_files(store: Any) -> list[str]:
    artifacts = ArtifactStore(store.settings.artifacts)
    return [i.path for i in artifacts.list("features/offline-log/driver_live", recursive=True)]


def test_pushed_rows_are_served_online_and_logged_offline(feature_store: Any) -> None:
    df = rows([1, 2], [T0, T0]).to_pandas()
    result = push(feature_store, "driver_push", df)
    assert result == {"push_source": "driver_push", "rows": 2, "views": {"driver_live": 2}}
    assert _online(feature_store, [1, 2, 3]) == (
        [10, 20, None],
        [FieldStatus.PRESENT, FieldStatus.PRESENT, FieldStatus.NOT_FOUND],
    )
    (log,) = _log_files(feature_store)
    assert log.endswith(".parquet")


def test_point_in_time_joins_see_pushed_rows(feature_store: Any) -> None:
    push(feature_store, "driver_push", rows([1], [T0], trips=[42]))
    entity_df = pd.DataFrame(
        {
            "driver_id": [1, 1],
            "event_timestamp": [T0 - timedelta(seconds=1), T0 + timedelta(minutes=1)],
        }
    )
    joined = feature_store.get_historical_features(entity_df, ["driver_live:trips"]).to_df()
    assert joined["trips"].tolist()[1] == 42
    assert pd.isna(joined["trips"].tolist()[0])


def test_a_retried_push_changes_nothing_online(feature_store: Any) -> None:
    table = rows([1], [T0], trips=[5])
    push(feature_store, "driver_push", table, to="online")
    assert push(feature_store, "driver_push", table, to="online")["rows"] == 1
    push(feature_store, "driver_push", rows([1], [T0 - timedelta(hours=1)], trips=[4]))
    assert _online(feature_store, [1])[0] == [5]


def test_push_targets_choose_online_or_offline(feature_store: Any) -> None:
    push(feature_store, "driver_push", rows([1], [T0]), to="online")
    assert _log_files(feature_store) == []
    push(feature_store, "driver_push", rows([2], [T0]), to="offline")
    assert _online(feature_store, [2])[1] == [FieldStatus.NOT_FOUND]
    assert len(_log_files(feature_store)) == 1
    with pytest.raises(InvalidArgumentError, match="Unknown push target 'onlin'"):
        push(feature_store, "driver_push", rows([2], [T0]), to="onlin")  # type: ignore[arg-type]


def test_rows_as_columns_or_dicts_with_iso_times_are_accepted(feature_store: Any) -> None:
    row = {
        "driver_id": 7,
        "event_timestamp": "2024-01-01T00:00:00Z",
        "conv_rate": 0.5,
        "trips": 3,
        "city": "Lyon",
        "active": True,
        "score": 1,
        "last_seen": 1704067200,
    }
    push(feature_store, "driver_push", [row])
    push(feature_store, "driver_push", {k: [v] for k, v in {**row, "driver_id": 8}.items()})
    view = feature_store.get_feature_view("driver_live")
    result = feature_store.online_store.read(
        view, ["conv_rate", "score", "last_seen"], [(7,), (8,)], now=T0
    )
    assert result.values == {
        "conv_rate": [0.5, 0.5],
        "score": [1.0, 1.0],
        "last_seen": [T0, T0],
    }
    assert result.event_ts == [T0, T0]


def test_missing_columns_are_named(feature_store: Any) -> None:
    table = rows([1], [T0]).drop_columns(["trips", "city"])
    with pytest.raises(InvalidArgumentError, match=r"lack the column\(s\) \['trips', 'city'\]"):
        push(feature_store, "driver_push", table)


@pytest.mark.parametrize(
    ("column", "values", "message"),
    [
        ("conv_rate", ["fast"], "Column 'conv_rate' has type string, but view 'driver_live'"),
        ("trips", [1.5], "Column 'trips' has type double"),
        ("active", [1], "Column 'active' has type int64"),
        ("driver_id", ["abc"], "Column 'driver_id' has type string"),
        ("event_timestamp", ["yesterday"], "Column 'event_timestamp' holds 'yesterday'"),
        ("driver_id", [None], "Column 'driver_id' has null values"),
    ],
)
def test_wrong_dtypes_are_refused_naming_the_column(
    feature_store: Any, column: str, values: list[Any], message: str
) -> None:
    table = rows([1], [T0])
    index = table.column_names.index(column)
    table = table.set_column(index, column, pa.array(values))
    with pytest.raises(InvalidArgumentError, match=message):
        push(feature_store, "driver_push", table)
    assert _online(feature_store, [1])[1] == [FieldStatus.NOT_FOUND]
    assert _log_files(feature_store) == []


def test_unknown_push_sources_suggest_a_close_name(feature_store: Any) -> None:
    with pytest.raises(
        NotFoundError, match=r"push source 'driver_pus'.*Did you mean 'driver_push'"
    ):
        push(feature_store, "driver_pus", rows([1], [T0]))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"trips": 2**70}, "Column 'trips' holds an integer too large for 64 bits"),
        ({"event_timestamp": 1e15}, "epoch seconds outside years 1-9999"),
        ({"conv_rate": 1e300}, "out of float32 range"),
        ({"city": "\ud800"}, "not valid Unicode"),
        ({"driver_id": True}, "Column 'driver_id' has type bool"),
    ],
)
def test_values_no_column_can_hold_are_refused(
    feature_store: Any, change: dict[str, Any], message: str
) -> None:
    row = rows([1], [T0]).to_pylist()[0]
    with pytest.raises(InvalidArgumentError, match=message):
        push(feature_store, "driver_push", [{**row, **change}])
