"""Materialization from the offline store into the online store: full ranges, the
incremental watermark, range edges, and that replaying a range never regresses a value."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from test_online_support import T0, driver, driver_view, feature_store_on, rows

from shipyard.errors import InvalidArgumentError
from shipyard.features.definitions import FileSource
from shipyard.features.materialize import materialize, materialize_incremental
from shipyard.features.online import FieldStatus

H = timedelta(hours=1)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """The folder of Parquet files ``driver_stats`` reads."""
    path = tmp_path / "driver_stats"
    path.mkdir()
    return path


@pytest.fixture(params=["sqlite", "redis"])
def feature_store(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    fresh_sqlite_url: str,
    artifacts_url: str,
    folder: Path,
) -> Iterator[Any]:
    """A FeatureStore on a fresh metadata DB whose online store is the parametrized
    backend, with ``driver_stats`` read from ``folder``."""
    view = driver_view(
        source=FileSource(
            path=str(folder), timestamp_field="event_timestamp", created_timestamp_column="created"
        ),
        ttl=timedelta(hours=2),
    )
    with feature_store_on(
        request.param, tmp_path, fresh_sqlite_url, artifacts_url, [driver, view]
    ) as store:
        yield store


def _add_file(folder: Path, name: str, table: Any) -> None:
    pq.write_table(table, folder / f"{name}.parquet")


def _trips(store: Any, ids: list[int], now: Any) -> tuple[list[Any], list[FieldStatus]]:
    view = store.get_feature_view("driver_stats")
    result = store.online_store.read(view, ["trips"], [(i,) for i in ids], now=now)
    return result.values["trips"], result.statuses["trips"]


def test_materialize_loads_the_latest_row_per_entity_in_the_range(
    feature_store: Any, folder: Path
) -> None:
    _add_file(
        folder,
        "a",
        rows(
            [1, 1, 2, 1],
            [T0, T0 + H, T0 + 2 * H, T0 + 3 * H],
            trips=[10, 11, 20, 12],
        ),
    )
    result = materialize(feature_store, None, T0, T0 + 3 * H)
    assert result["driver_stats"]["rows"] == 2
    assert result["driver_stats"]["written"] == 2
    values, statuses = _trips(feature_store, [1, 2, 3], now=T0 + 2 * H)
    assert values == [11, 20, None]  # the row at exactly `end` is left out
    assert statuses == [FieldStatus.PRESENT, FieldStatus.PRESENT, FieldStatus.NOT_FOUND]
    assert feature_store.online_store.get_watermark("driver_stats") == T0 + 3 * H


def test_replaying_an_older_range_never_regresses_values(feature_store: Any, folder: Path) -> None:
    _add_file(folder, "a", rows([1, 1], [T0, T0 + 2 * H], trips=[1, 2]))
    materialize(feature_store, ["driver_stats"], T0, T0 + 4 * H)
    again = materialize(feature_store, ["driver_stats"], T0, T0 + H)
    assert again["driver_stats"] == {"start": T0, "end": T0 + H, "rows": 1, "written": 0}
    assert _trips(feature_store, [1], now=T0 + 2 * H)[0] == [2]
    assert feature_store.online_store.get_watermark("driver_stats") == T0 + 4 * H


def test_incremental_runs_continue_from_the_watermark(feature_store: Any, folder: Path) -> None:
    _add_file(folder, "a", rows([1, 2], [T0 + H, T0 + H], trips=[1, 2]))
    first = materialize_incremental(feature_store, T0 + 2 * H)
    # Never materialized: the range starts at end - ttl.
    assert first["driver_stats"]["start"] == T0
    assert _trips(feature_store, [1, 2], now=T0 + 2 * H)[0] == [1, 2]

    _add_file(folder, "b", rows([1, 3], [T0 + 150 * timedelta(minutes=1)] * 2, trips=[5, 7]))
    second = materialize_incremental(feature_store, T0 + 3 * H, ["driver_stats"])
    assert second["driver_stats"]["start"] == T0 + 2 * H
    assert second["driver_stats"]["rows"] == 2
    assert _trips(feature_store, [1, 2, 3], now=T0 + 2 * H)[0] == [5, 2, 7]
    assert feature_store.online_store.get_watermark("driver_stats") == T0 + 3 * H

    caught_up = materialize_incremental(feature_store, T0 + 3 * H)
    assert caught_up["driver_stats"]["rows"] == 0


def test_materialized_rows_past_the_ttl_read_as_outside_ttl(
    feature_store: Any, folder: Path
) -> None:
    _add_file(folder, "a", rows([1], [T0]))
    materialize(feature_store, None, T0, T0 + H)
    # exactly ttl old still counts (as in the PIT join); a microsecond more does not
    assert _trips(feature_store, [1], now=T0 + 2 * H)[1] == [FieldStatus.PRESENT]
    past = T0 + 2 * H + timedelta(microseconds=1)
    assert _trips(feature_store, [1], now=past)[1] == [FieldStatus.OUTSIDE_TTL]


def test_progress_reports_every_view(feature_store: Any, folder: Path) -> None:
    _add_file(folder, "a", rows([1, 2, 3], [T0] * 3))
    seen: list[tuple[str, int, int]] = []
    materialize(feature_store, None, T0, T0 + H, progress=lambda *a: seen.append(a))
    assert seen[0] == ("driver_stats", 0, 3)
    assert seen[-1] == ("driver_stats", 3, 3)


def test_bad_ranges_and_offline_views_are_refused(feature_store: Any) -> None:
    with pytest.raises(InvalidArgumentError, match="is not before the end"):
        materialize(feature_store, None, T0 + H, T0)
    offline = driver_view("offline_only", online=False, source=FileSource(path="x.parquet"))
    with pytest.raises(InvalidArgumentError, match="offline only"):
        materialize(feature_store, [offline], T0, T0 + H)
