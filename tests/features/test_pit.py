"""Point-in-time joins equal a brute-force reference, on the kernel and end to end."""

from __future__ import annotations

import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shipyard.features.definitions import Entity, FeatureView, Field
from shipyard.features.offline import ViewRequest, historical_features, read_latest
from shipyard.features.pit import point_in_time_rows
from shipyard.features.sources import FileSource
from shipyard.features.types import Float64, Int64, ValueType

START = datetime(2024, 3, 1, tzinfo=UTC)


def brute_rows(
    e_id: list[int],
    e_ts: list[int],
    f_id: list[int],
    f_ts: list[int],
    created: list[int] | None,
    ttl: int | None,
) -> list[int]:
    """The spec, written the slow way: latest row with ts <= t and ts >= t - ttl; ties by
    created, then by source position."""
    out = []
    for key, t in zip(e_id, e_ts, strict=True):
        best, best_key = -1, None
        for j, (k, ts) in enumerate(zip(f_id, f_ts, strict=True)):
            if k < 0 or k != key or ts > t or (ttl is not None and ts < t - ttl):
                continue
            rank = (ts, created[j] if created is not None else 0, j)
            if best_key is None or rank > best_key:
                best, best_key = j, rank
        out.append(best)
    return out


kernel_case = st.integers(0, 40).flatmap(
    lambda m: st.tuples(
        st.lists(st.integers(-1, 4), min_size=m, max_size=m),
        st.lists(st.integers(0, 12), min_size=m, max_size=m),
        st.one_of(st.none(), st.lists(st.integers(0, 3), min_size=m, max_size=m)),
        st.lists(st.tuples(st.integers(-1, 5), st.integers(-2, 15)), max_size=30),
        st.one_of(st.none(), st.integers(0, 6)),
        st.sampled_from(["auto", "ranked", "argsort"]),
        st.sampled_from([1, 1_000, 1_000_000_000]),
        st.booleans(),
    )
)


@settings(max_examples=120, deadline=None)
@given(kernel_case)
def test_kernel_equals_brute_force(case: Any) -> None:
    f_id, f_ts, created, probes, ttl, strategy, unit, lazy = case
    e_id = [p[0] for p in probes]
    e_ts = [p[1] * unit for p in probes]
    f_ts = [t * unit for t in f_ts]
    ttl = None if ttl is None else ttl * unit
    expected = brute_rows(e_id, e_ts, f_id, f_ts, created, ttl)
    given_created: Any = created
    if created is not None and lazy:
        values = np.array(created)
        given_created = lambda rows: values[rows]  # noqa: E731
    got = point_in_time_rows(
        np.array(e_id, dtype=np.int64),
        np.array(e_ts, dtype=np.int64),
        np.array(f_id, dtype=np.int32 if lazy else np.int64),
        np.array(f_ts, dtype=np.int64),
        given_created,
        ttl,
        strategy=strategy,
    )
    assert got.tolist() == expected


def test_kernel_ttl_boundary_is_inclusive() -> None:
    rows = point_in_time_rows(
        np.array([0, 0, 0]), np.array([10, 11, 9]), np.array([0]), np.array([5]), None, 5
    )
    assert rows.tolist() == [0, -1, 0]


# -- end to end through Parquet files ------------------------------------------------------

ZONES = ["UTC", "Asia/Kolkata", "America/New_York", "Europe/Paris"]

feature_rows = st.lists(
    st.tuples(st.integers(1, 4), st.integers(0, 30), st.integers(0, 2), st.integers(-50, 50)),
    max_size=40,
)
entity_rows = st.lists(st.tuples(st.integers(1, 6), st.integers(-3, 40)), min_size=1, max_size=25)


def _write_view(
    folder: Path,
    name: str,
    rows: list[tuple[int, int, int, int]],
    zone: str,
    ttl: int | None,
    with_created: bool,
    driver: Entity,
    as_text: bool = False,
) -> FeatureView:
    ts = pd.Series([START + timedelta(seconds=r[1]) for r in rows], dtype="datetime64[ns, UTC]")
    data: dict[str, Any] = {
        "driver_id": pa.array([f"d{r[0]}" if as_text else r[0] for r in rows]),
        "event_timestamp": pa.array(ts.dt.tz_convert(zone)),
        "value": pa.array([float(r[3]) for r in rows], pa.float64()),
        "count": pa.array([r[3] * 10 for r in rows], pa.int64()),
    }
    if with_created:
        created = pd.Series(
            [START + timedelta(seconds=r[1] + r[2]) for r in rows], dtype="datetime64[ns, UTC]"
        )
        data["created"] = pa.array(created)
    path = folder / f"{name}.parquet"
    pq.write_table(pa.table(data), path, row_group_size=7)
    return FeatureView(
        name=name,
        entities=[driver],
        schema=[Field("value", Float64), Field("count", Int64)],
        source=FileSource(str(path), "event_timestamp", "created" if with_created else None),
        ttl=timedelta(seconds=ttl) if ttl else None,
    )


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    first=feature_rows,
    second=feature_rows,
    probes=entity_rows,
    ttls=st.tuples(st.sampled_from([None, 3, 10]), st.sampled_from([None, 1, 6])),
    zones=st.tuples(st.sampled_from(ZONES), st.sampled_from(ZONES), st.sampled_from(ZONES)),
    as_text=st.booleans(),
)
def test_historical_features_equal_brute_force(
    first: list[Any], second: list[Any], probes: list[Any], ttls: Any, zones: Any, as_text: bool
) -> None:
    kind = ValueType.STRING if as_text else ValueType.INT64
    driver = Entity("driver", join_keys=["driver_id"], value_type=kind)
    with tempfile.TemporaryDirectory() as tmp:
        views = [
            _write_view(Path(tmp), "a", first, zones[0], ttls[0], True, driver, as_text),
            _write_view(Path(tmp), "b", second, zones[1], ttls[1], False, driver, as_text),
        ]
        stamps = pd.Series(
            [START + timedelta(seconds=p[1]) for p in probes], dtype="datetime64[ns, UTC]"
        ).dt.tz_convert(zones[2])
        entity = pd.DataFrame(
            {
                "driver_id": [f"d{p[0]}" if as_text else p[0] for p in probes],
                "event_timestamp": stamps,
                "row": range(len(probes)),
            }
        )
        result = historical_features(
            entity,
            [ViewRequest(views[0], ("value", "count")), ViewRequest(views[1], ("value",))],
            full_feature_names=True,
        ).to_pandas()

    assert result["row"].tolist() == list(range(len(probes)))
    assert result["driver_id"].tolist() == [f"d{p[0]}" if as_text else p[0] for p in probes]
    for rows, ttl, prefix, with_created in (
        (first, ttls[0], "a", True),
        (second, ttls[1], "b", False),
    ):
        expected = brute_rows(
            [p[0] for p in probes],
            [p[1] for p in probes],
            [r[0] for r in rows],
            [r[1] for r in rows],
            [r[1] + r[2] for r in rows] if with_created else None,
            ttl,
        )
        got = result[f"{prefix}__value"].tolist()
        want = [None if j < 0 else float(rows[j][3]) for j in expected]
        assert [None if pd.isna(v) else v for v in got] == want
    counts = result["a__count"].tolist()
    expected_a = brute_rows(
        [p[0] for p in probes],
        [p[1] for p in probes],
        [r[0] for r in first],
        [r[1] for r in first],
        [r[1] + r[2] for r in first],
        ttls[0],
    )
    assert [None if pd.isna(v) else int(v) for v in counts] == [
        None if j < 0 else first[j][3] * 10 for j in expected_a
    ]


def _driver_view(path: Path, ttl: timedelta | None = None) -> FeatureView:
    driver = Entity("driver", join_keys=["driver_id"], value_type=ValueType.INT64)
    return FeatureView(
        name="stats",
        entities=[driver],
        schema=[Field("value", Float64)],
        source=FileSource(str(path), created_timestamp_column="created"),
        ttl=ttl,
    )


def test_entity_rows_without_history_get_nulls_and_keep_order(tmp_path: Path) -> None:
    ts = [START, START + timedelta(hours=1)]
    pq.write_table(
        pa.table({"driver_id": [1, 1], "event_timestamp": ts, "created": ts, "value": [1.0, 2.0]}),
        tmp_path / "f.parquet",
    )
    entity = pa.table(
        {
            "driver_id": [9, 1, 1, 1],
            "event_timestamp": [START, START + timedelta(minutes=90), START, START - timedelta(1)],
        }
    )
    out = historical_features(
        entity, [ViewRequest(_driver_view(tmp_path / "f.parquet"), ("value",))]
    )
    assert out.column("value").to_pylist() == [None, 2.0, 1.0, None]
    assert out.column("driver_id").to_pylist() == [9, 1, 1, 1]


def test_hive_partitioned_folder_and_string_keys(tmp_path: Path) -> None:
    for day in ("2024-03-01", "2024-03-02"):
        folder = tmp_path / "stats" / f"date={day}"
        folder.mkdir(parents=True)
        when = datetime.fromisoformat(day).replace(tzinfo=UTC)
        pq.write_table(
            pa.table({"user": ["u1", "u2"], "event_timestamp": [when, when], "score": [1.5, 2.5]}),
            folder / "part-0.parquet",
        )
    user = Entity("user", value_type=ValueType.STRING)
    view = FeatureView(
        name="scores",
        entities=[user],
        schema=[Field("score", Float64)],
        source=FileSource(str(tmp_path / "stats")),
    )
    entity = pa.table(
        {"user": ["u2", "u3", "u1"], "event_timestamp": [START + timedelta(days=2)] * 3}
    )
    out = historical_features(entity, [ViewRequest(view, ("score",))])
    assert out.column("score").to_pylist() == [2.5, None, 1.5]


def test_read_latest_takes_newest_row_per_entity_in_range(tmp_path: Path) -> None:
    ts = [
        START,
        START + timedelta(minutes=5),
        START + timedelta(minutes=5),
        START + timedelta(hours=2),
    ]
    created = [ts[0], ts[1], ts[2] + timedelta(seconds=1), ts[3]]
    pq.write_table(
        pa.table(
            {
                "driver_id": [1, 1, 1, 2],
                "event_timestamp": ts,
                "created": created,
                "value": [1.0, 2.0, 3.0, 4.0],
            }
        ),
        tmp_path / "f.parquet",
    )
    view = _driver_view(tmp_path / "f.parquet")
    latest = read_latest(view, START, START + timedelta(hours=1))
    assert latest.column("driver_id").to_pylist() == [1]
    assert latest.column("value").to_pylist() == [3.0]
    assert latest.schema.field("event_timestamp").type == pa.timestamp("us", tz="UTC")
    assert read_latest(view, START + timedelta(hours=3), START + timedelta(hours=4)).num_rows == 0


def test_naive_datetimes_rejected_by_read_latest(tmp_path: Path) -> None:
    from shipyard.errors import InvalidArgumentError

    view = _driver_view(tmp_path / "missing.parquet")
    with pytest.raises(InvalidArgumentError, match="has no timezone"):
        read_latest(view, datetime(2024, 1, 1), datetime(2024, 1, 2))


def test_compound_join_keys_from_two_entities(tmp_path: Path) -> None:
    ts = [START, START, START + timedelta(minutes=10)]
    pq.write_table(
        pa.table(
            {
                "driver_id": [1, 1, 2],
                "customer": ["a", "b", "a"],
                "event_timestamp": ts,
                "value": [1.0, 2.0, 3.0],
            }
        ),
        tmp_path / "pairs.parquet",
    )
    driver = Entity("driver", join_keys=["driver_id"], value_type=ValueType.INT64)
    customer = Entity("customer", value_type=ValueType.STRING)
    view = FeatureView(
        name="pairs",
        entities=[driver, customer],
        schema=[Field("value", Float64)],
        source=FileSource(str(tmp_path / "pairs.parquet")),
    )
    assert view.join_keys == ["driver_id", "customer"]
    entity = pa.table(
        {
            "driver_id": [2, 1, 1, 2, 3],
            "customer": ["a", "b", "a", "b", "a"],
            "event_timestamp": [START + timedelta(hours=1)] * 5,
        }
    )
    out = historical_features(entity, [ViewRequest(view, ("value",))])
    assert out.column("value").to_pylist() == [3.0, 2.0, 1.0, None, None]


def test_entity_keys_of_another_type_are_cast_or_refused(tmp_path: Path) -> None:
    from shipyard.errors import InvalidArgumentError

    pq.write_table(
        pa.table(
            {"driver_id": [1], "event_timestamp": [START], "created": [START], "value": [5.0]}
        ),
        tmp_path / "f.parquet",
    )
    view = _driver_view(tmp_path / "f.parquet")
    as_text = pa.table({"driver_id": ["1"], "event_timestamp": [START]})
    assert historical_features(as_text, [ViewRequest(view, ("value",))]).column(
        "value"
    ).to_pylist() == [5.0]
    bad = pa.table({"driver_id": ["one"], "event_timestamp": [START]})
    with pytest.raises(InvalidArgumentError, match="do not match the source's int64"):
        historical_features(bad, [ViewRequest(view, ("value",))])


def test_time_sorted_files_skip_row_groups_outside_the_window(tmp_path: Path) -> None:
    from shipyard.features.offline_sources import History

    hours = 48
    stamps = [START + timedelta(hours=h) for h in range(hours) for _ in range(2)]
    pq.write_table(
        pa.table(
            {
                "driver_id": [1, 2] * hours,
                "event_timestamp": stamps,
                "created": stamps,
                "value": [float(i) for i in range(2 * hours)],
            }
        ),
        tmp_path / "sorted.parquet",
        row_group_size=8,  # 4 hours per row group
    )
    view = _driver_view(tmp_path / "sorted.parquet", ttl=timedelta(hours=1))
    probe = START + timedelta(hours=30, minutes=30)
    entity = pa.table({"driver_id": [2, 1], "event_timestamp": [probe, probe]})
    out = historical_features(entity, [ViewRequest(view, ("value",))])
    assert out.column("value").to_pylist() == [61.0, 60.0]
    lo = int(probe.timestamp() - 3600) * 10**9
    with History(view, time_range=(lo, int(probe.timestamp()) * 10**9)) as history:
        list(history.scan(["driver_id"]))
        assert len(history.segments) == 1  # of 12 row groups
