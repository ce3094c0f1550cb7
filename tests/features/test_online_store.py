"""The OnlineStore contract, run on SQLite and on Redis: round trips of every dtype,
statuses (present, not found, outside TTL), idempotent writes by (entity, event time),
watermarks, schema growth, and the canonical entity-key encoding."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_online_support import (
    T0,
    TS,
    driver_view,
    pair_view,
    rows,
    store_factory,
)

from shipyard.errors import ConfigError, InvalidArgumentError
from shipyard.features.definitions import Field
from shipyard.features.online import FieldStatus, OnlineStore, entity_key, open_online_store
from shipyard.features.online.base import EPOCH, entity_keys_of, from_micros, to_micros
from shipyard.features.types import Float64


@pytest.fixture(params=["sqlite", "redis"])
def make_store(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[Callable[[], Any]]:
    with store_factory(request.param, tmp_path) as make:
        yield make


FEATURES = ["conv_rate", "trips", "city", "active", "score", "last_seen"]
Make = Callable[[], Any]


def test_values_of_every_dtype_round_trip(make_store: Make) -> None:
    store, view = make_store(), driver_view()
    assert isinstance(store, OnlineStore)
    assert store.write(view, rows([2, 3], [T0, T0])) == 2
    result = store.read(view, FEATURES, [(3,), (2,)], now=T0)
    assert result.values == {
        "conv_rate": [0.375, 0.25],
        "trips": [30, 20],
        "city": ["city-3", "city-2"],
        "active": [False, True],
        "score": [4.5, 3.0],
        "last_seen": [T0 + timedelta(seconds=1), T0],
    }
    assert result.statuses["trips"] == [FieldStatus.PRESENT] * 2
    assert result.event_ts == [T0, T0]


def test_float32_values_come_back_as_stored(make_store: Make) -> None:
    store, view = make_store(), driver_view()
    store.write(view, rows([1], [T0], conv=[0.1]))
    (value,) = store.read(view, ["conv_rate"], [(1,)], now=T0).values["conv_rate"]
    assert value == pa.scalar(0.1, pa.float32()).as_py()


def test_unknown_entities_are_not_found_and_nulls_are_present(make_store: Make) -> None:
    store, view = make_store(), driver_view()
    store.write(view, rows([1], [T0], conv=[None], trips=[None]))
    result = store.read(view, ["conv_rate", "trips", "city"], [(1,), (99,)], now=T0)
    assert result.values == {
        "conv_rate": [None, None],
        "trips": [None, None],
        "city": ["city-1", None],
    }
    assert result.statuses["conv_rate"] == [FieldStatus.PRESENT, FieldStatus.NOT_FOUND]
    assert result.event_ts == [T0, None]


def test_reading_a_view_never_written_finds_nothing(make_store: Make) -> None:
    result = make_store().read(driver_view(), ["trips"], [(1,)], now=T0)
    assert result.values == {"trips": [None]}
    assert result.statuses == {"trips": [FieldStatus.NOT_FOUND]}


def test_rows_past_the_ttl_are_outside_ttl_with_no_value(make_store: Make) -> None:
    """Like the offline PIT join (and Feast): a row exactly ttl old is still fresh."""
    store, view = make_store(), driver_view(ttl=timedelta(hours=2))
    store.write(view, rows([1, 2], [T0 - timedelta(microseconds=1), T0]))
    now = T0 + timedelta(hours=2)  # row 2 is exactly ttl old, row 1 a microsecond older
    result = store.read(view, ["trips"], [(1,), (2,)], now=now)
    assert result.statuses["trips"] == [FieldStatus.OUTSIDE_TTL, FieldStatus.PRESENT]
    assert result.values["trips"] == [None, 20]
    assert result.event_ts == [T0 - timedelta(microseconds=1), T0]


def test_a_view_without_ttl_never_expires(make_store: Make) -> None:
    store, view = make_store(), driver_view(ttl=None)
    store.write(view, rows([1], [T0]))
    result = store.read(view, ["trips"], [(1,)], now=T0 + timedelta(days=3650))
    assert result.statuses["trips"] == [FieldStatus.PRESENT]


def test_an_older_row_never_replaces_a_newer_one(make_store: Make) -> None:
    store, view = make_store(), driver_view()
    later = T0 + timedelta(minutes=5)
    assert store.write(view, rows([1], [later], trips=[2])) == 1
    assert store.write(view, rows([1], [T0], trips=[1])) == 0
    result = store.read(view, ["trips"], [(1,)], now=later)
    assert result.values["trips"] == [2]
    assert result.event_ts == [later]


def test_equal_event_times_are_decided_by_the_created_time(make_store: Make) -> None:
    store, view = make_store(), driver_view()
    late = T0 + timedelta(seconds=30)
    store.write(view, rows([1], [T0], created=[late], trips=[2]))
    store.write(view, rows([1], [T0], created=[T0], trips=[1]))
    assert store.read(view, ["trips"], [(1,)], now=T0).values["trips"] == [2]
    store.write(view, rows([1], [T0], created=[late + timedelta(seconds=1)], trips=[3]))
    assert store.read(view, ["trips"], [(1,)], now=T0).values["trips"] == [3]


def test_duplicates_inside_one_write_keep_the_newest(make_store: Make) -> None:
    store, view = make_store(), driver_view()
    times = [T0 + timedelta(seconds=s) for s in (5, 9, 1)]
    store.write(view, rows([1, 1, 1], times, trips=[5, 9, 1]))
    assert store.read(view, ["trips"], [(1,)], now=T0).values["trips"] == [9]


def test_a_newer_row_replaces_every_feature_including_nulls(make_store: Make) -> None:
    store, view = make_store(), driver_view()
    store.write(view, rows([1], [T0], trips=[7]))
    store.write(view, rows([1], [T0 + timedelta(seconds=1)], trips=[None]))
    assert store.read(view, ["trips"], [(1,)], now=T0).values["trips"] == [None]


def test_features_missing_from_a_write_are_stored_as_null(make_store: Make) -> None:
    store, view = make_store(), driver_view()
    table = rows([1], [T0]).select(["driver_id", "event_timestamp", "trips"])
    store.write(view, table)
    result = store.read(view, ["trips", "city"], [(1,)], now=T0)
    assert result.values == {"trips": [10], "city": [None]}


def test_composite_keys_of_ints_and_strings(make_store: Make) -> None:
    store, view = make_store(), pair_view()
    table = pa.table(
        {
            "driver_id": pa.array([1, 1, 2], pa.int64()),
            "customer_id": ["a", "b", "a"],
            "event_timestamp": pa.array([T0] * 3, TS),
            "spend": [1.0, 2.0, 3.0],
        }
    )
    assert store.write(view, table) == 3
    result = store.read(view, ["spend"], [(1, "b"), (2, "a"), (2, "b")], now=T0)
    assert result.values["spend"] == [2.0, 3.0, None]


def test_a_view_that_gains_a_feature_reads_null_for_old_rows(make_store: Make) -> None:
    store = make_store()
    store.write(driver_view(), rows([1], [T0]))
    grown = driver_view(extra=(Field("rating", Float64),))
    result = store.read(grown, ["trips", "rating"], [(1,)], now=T0)
    assert result.values == {"trips": [10], "rating": [None]}
    table = rows([1], [T0 + timedelta(seconds=1)]).append_column("rating", pa.array([4.5]))
    store.write(grown, table)
    assert store.read(grown, ["rating"], [(1,)], now=T0).values["rating"] == [4.5]


def test_unknown_features_are_refused_with_a_suggestion(make_store: Make) -> None:
    with pytest.raises(InvalidArgumentError, match=r"no feature 'trip'.*Did you mean 'trips'"):
        make_store().read(driver_view(), ["trip"], [(1,)])


def test_rows_without_the_join_key_or_event_time_are_refused(make_store: Make) -> None:
    store, view = make_store(), driver_view()
    with pytest.raises(InvalidArgumentError, match=r"join key column\(s\) \['driver_id'\]"):
        store.write(view, rows([1], [T0]).drop_columns(["driver_id"]))
    with pytest.raises(InvalidArgumentError, match="event_timestamp"):
        store.write(view, rows([1], [T0]).drop_columns(["event_timestamp"]))


def test_watermarks_are_kept_per_view(make_store: Make) -> None:
    store = make_store()
    assert store.get_watermark("driver_stats") is None
    store.set_watermark("driver_stats", T0)
    store.set_watermark("other", T0 + timedelta(hours=1))
    store.set_watermark("driver_stats", T0 + timedelta(minutes=1))
    assert store.get_watermark("driver_stats") == T0 + timedelta(minutes=1)
    assert store.get_watermark("other") == T0 + timedelta(hours=1)


def test_delete_view_drops_its_rows_and_watermark_only(make_store: Make) -> None:
    store = make_store()
    one, two = driver_view("one"), driver_view("two")
    store.write(one, rows([1], [T0]))
    store.write(two, rows([1], [T0]))
    store.set_watermark("one", T0)
    store.delete_view("one")
    assert store.read(one, ["trips"], [(1,)], now=T0).statuses["trips"] == [FieldStatus.NOT_FOUND]
    assert store.read(two, ["trips"], [(1,)], now=T0).statuses["trips"] == [FieldStatus.PRESENT]
    assert store.get_watermark("one") is None


def test_threads_write_and_read_concurrently(make_store: Make) -> None:
    store, view = make_store(), driver_view()
    errors: list[BaseException] = []

    def work(offset: int) -> None:
        try:
            for step in range(20):
                ids = [offset * 100 + i for i in range(10)]
                store.write(view, rows(ids, [T0 + timedelta(seconds=step)] * 10))
                store.read(view, ["trips"], [(i,) for i in ids], now=T0)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    ids = [(n * 100 + i,) for n in range(4) for i in range(10)]
    result = store.read(view, ["trips"], ids, now=T0)
    assert result.event_ts == [T0 + timedelta(seconds=19)] * 40


def test_sqlite_data_survives_reopening(tmp_path: Any) -> None:
    url = f"sqlite:///{tmp_path / 'online.db'}"
    store, view = open_online_store(url), driver_view()
    store.write(view, rows([1], [T0]))
    store.set_watermark("driver_stats", T0)
    store.close()
    again = open_online_store(url)
    assert again.read(view, ["trips"], [(1,)], now=T0).values["trips"] == [10]
    assert again.get_watermark("driver_stats") == T0
    again.close()


def test_unknown_schemes_are_refused_with_the_supported_ones() -> None:
    with pytest.raises(ConfigError, match=r"Unknown online store scheme 'redsi'.*'redis'"):
        open_online_store("redsi://localhost")


def test_entity_keys_are_canonical_and_unambiguous() -> None:
    assert entity_key([1001]) == "i1001"
    assert entity_key(["ab", "c"]) != entity_key(["a", "bc"])
    assert entity_key([1, "2"]) != entity_key(["1", 2])
    assert entity_key([b"\x00\x01"]) == "x0001"
    view = driver_view()
    import numpy as np

    assert entity_keys_of(view, [(np.int64(7),), (7.0,), ("7",), (7,)]) == ["i7"] * 4
    with pytest.raises(InvalidArgumentError, match="must be an integer"):
        entity_keys_of(view, [(7.5,)])
    with pytest.raises(InvalidArgumentError, match="is null"):
        entity_keys_of(view, [(None,)])


# -- idempotency against a brute-force reference ---------------------------------------------

_writes = st.lists(
    st.tuples(
        st.integers(1, 4),  # entity
        st.integers(0, 5),  # event time, seconds
        st.integers(0, 3),  # created time, seconds
    ),
    min_size=1,
    max_size=25,
)


def _table_of(writes: list[tuple[int, int, int]]) -> pa.Table:
    ids = [w[0] for w in writes]
    times = [T0 + timedelta(seconds=w[1]) for w in writes]
    created = [T0 + timedelta(seconds=w[2]) for w in writes]
    # A value determined by (entity, event, created): replays of one row carry the same
    # values, as a re-sent event does.
    trips = [w[0] * 10_000 + w[1] * 100 + w[2] for w in writes]
    return rows(ids, times, created=created, trips=trips)


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(writes=_writes, order=st.randoms(use_true_random=False), splits=st.integers(1, 4))
def test_any_write_order_ends_in_the_max_by_event_then_created(
    make_store: Make, writes: list[tuple[int, int, int]], order: Any, splits: int
) -> None:
    store, view = make_store(), driver_view(ttl=None)
    shuffled = list(writes)
    order.shuffle(shuffled)
    size = max(1, len(shuffled) // splits)
    for start in range(0, len(shuffled), size):
        store.write(view, _table_of(shuffled[start : start + size]))
    expected: dict[int, tuple[int, int]] = {}
    for entity, event, created in writes:
        expected[entity] = max(expected.get(entity, (event, created)), (event, created))
    keys = [(e,) for e in range(1, 6)]
    result = store.read(view, ["trips"], keys, now=T0)
    want = [
        e * 10_000 + expected[e][0] * 100 + expected[e][1] if e in expected else None
        for e in range(1, 6)
    ]
    assert result.values["trips"] == want
    assert result.event_ts == [
        T0 + timedelta(seconds=expected[e][0]) if e in expected else None for e in range(1, 6)
    ]
    store.write(view, _table_of(writes))  # a full replay changes nothing
    assert store.read(view, ["trips"], keys, now=T0).values["trips"] == want


@given(st.integers(-62_135_596_800_000_000, 253_402_300_799_999_999))
def test_epoch_micros_convert_exactly(micros: int) -> None:
    at = from_micros(micros)
    assert at == EPOCH + timedelta(microseconds=micros)
    assert to_micros(at) == micros


def test_redis_key_prefixes_keep_stores_apart(tmp_path: Any) -> None:
    with store_factory("redis", tmp_path) as make:
        one, two = make(), make()
        view = driver_view()
        one.write(view, rows([1], [T0]))
        one.set_watermark("driver_stats", T0)
        assert two.read(view, ["trips"], [(1,)], now=T0).statuses["trips"] == [
            FieldStatus.NOT_FOUND
        ]
        assert two.get_watermark("driver_stats") is None


def test_reprs_name_the_store_without_its_password(tmp_path: Any) -> None:
    store = open_online_store("redis://:hunter2@127.0.0.1:6379/15?key_prefix=repr-test:")
    assert "hunter2" not in repr(store)
    assert repr(store).startswith("RedisOnlineStore('redis://")
    store.close()
    sqlite = open_online_store(f"sqlite:///{tmp_path / 'o.db'}")
    assert repr(sqlite) == f"SqliteOnlineStore('sqlite:///{tmp_path / 'o.db'}')"
    sqlite.close()
