"""The prediction log read back from the serving layout, and windows cut as brute force says."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shipyard.errors import InvalidArgumentError
from shipyard.monitoring.windows import (
    count_windows,
    feature_frame,
    latest_window,
    parse_window,
    read_prediction_log,
    time_windows,
)
from tests.monitoring.conftest import log_table

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _us(at: datetime) -> int:
    return (at - EPOCH) // timedelta(microseconds=1)


def test_read_prediction_log_filters_by_time_and_unifies_parts(
    write_log: Callable[..., Any], artifacts_url: str
) -> None:
    day1 = datetime(2026, 3, 1, 23, 59, tzinfo=UTC)
    write_log({"a": [1.0, 2.0, 3.0]}, end=day1, seconds=60)
    write_log({"a": [4.0], "b": ["x"]}, end=day1 + timedelta(minutes=2), seconds=1)
    write_log({"a": [9.0]}, model="other")
    everything = read_prediction_log(artifacts_url, "default", "churn")
    assert everything.num_rows == 4
    assert everything.column("feature.b").null_count == 3  # the column one part lacks
    ts = everything.column("ts").to_pylist()
    assert ts == sorted(ts)
    late = read_prediction_log(
        artifacts_url, "default", "churn", start=day1.replace(tzinfo=None) + timedelta(seconds=1)
    )
    assert late.column("feature.a").to_pylist() == [4.0]
    early = read_prediction_log(artifacts_url, "default", "churn", end=day1 + timedelta(seconds=1))
    assert early.num_rows == 3
    assert read_prediction_log(artifacts_url, "default", "missing").num_rows == 0
    frame = feature_frame(everything)
    assert list(frame.columns) == ["a", "b"]


def test_read_prediction_log_reads_files_written_by_pyarrow_directly(
    artifacts_url: str, tmp_path: Any
) -> None:
    import pyarrow.parquet as pq

    from shipyard.store.artifacts import ArtifactStore

    table = log_table({"x": [0.5, 1.5]}, end=datetime.now(UTC))
    # The contract's exact layout, written without the helper (as the model server does).
    root = ArtifactStore(artifacts_url)
    day = datetime.now(UTC).strftime("%Y-%m-%d")
    path = tmp_path / "part.parquet"
    pq.write_table(table, path)
    root.put_file(path, f"prediction-logs/ws1/churn/date={day}/part-1-abcdef12.parquet")
    read = read_prediction_log(artifacts_url, "ws1", "churn")
    assert read.column("feature.x").to_pylist() == [0.5, 1.5]
    assert read.schema.field("ts").type == pa.timestamp("us", tz="UTC")


def test_an_inverted_range_is_refused(artifacts_url: str) -> None:
    now = datetime.now(UTC)
    with pytest.raises(InvalidArgumentError, match=r"ends .* before it starts"):
        read_prediction_log(artifacts_url, "default", "m", start=now, end=now - timedelta(1))


def _brute_time_windows(ts: list[int], size: int, step: int) -> list[tuple[int, int, int]]:
    out = []
    if not ts:
        return out
    k = -(10**6)
    for k in range(min(ts) // step - size // step - 2, max(ts) // step + 2):
        start, end = k * step, k * step + size
        rows = [i for i, t in enumerate(ts) if start <= t < end]
        if rows:
            out.append((start, rows[0], rows[-1] + 1))
    return out


@settings(max_examples=150, deadline=None)
@given(
    ts=st.lists(st.integers(-5_000, 5_000), max_size=60).map(sorted),
    size=st.integers(1, 700),
    step_ratio=st.sampled_from([1, 2, 3, 7]),
)
def test_time_windows_match_brute_force(ts: list[int], size: int, step_ratio: int) -> None:
    step = max(1, size // step_ratio)
    windows = time_windows(
        np.asarray(ts, dtype=np.int64),
        timedelta(microseconds=size),
        timedelta(microseconds=step),
    )
    got = [(_us(w.start), w.lo, w.hi) for w in windows]  # type: ignore[arg-type]
    assert got == _brute_time_windows(ts, size, step)
    for w in windows:
        assert _us(w.end) - _us(w.start) == size  # type: ignore[arg-type]


@settings(max_examples=100, deadline=None)
@given(n=st.integers(0, 200), size=st.integers(1, 50), step=st.integers(1, 50))
def test_count_windows_match_brute_force(n: int, size: int, step: int) -> None:
    expected = [(lo, lo + size) for lo in range(0, n) if lo % step == 0 and lo + size <= n]
    assert [(w.lo, w.hi) for w in count_windows(n, size, step)] == expected


@settings(max_examples=100, deadline=None)
@given(
    ts=st.lists(st.integers(0, 10_000), max_size=50).map(sorted),
    size=st.integers(1, 5_000),
    now=st.integers(0, 12_000),
)
def test_latest_time_window_holds_exactly_the_rows_before_now(
    ts: list[int], size: int, now: int
) -> None:
    w = latest_window(
        np.asarray(ts, dtype=np.int64),
        size=size / 1e6,
        by="time",
        now=EPOCH + timedelta(microseconds=now),
    )
    assert list(range(w.lo, w.hi)) == [i for i, t in enumerate(ts) if now - size <= t < now]


def test_latest_count_window_is_the_last_rows() -> None:
    w = latest_window(np.arange(10, dtype=np.int64), size=4, by="count", now=datetime.now(UTC))
    assert (w.lo, w.hi) == (6, 10)


def test_time_windows_within_a_range_and_bad_sizes() -> None:
    ts = np.arange(0, 100, dtype=np.int64)
    got = time_windows(
        ts,
        timedelta(microseconds=10),
        start=EPOCH + timedelta(microseconds=20),
        end=EPOCH + timedelta(microseconds=50),
    )
    assert [(w.lo, w.hi) for w in got] == [(20, 30), (30, 40), (40, 50)]
    with pytest.raises(InvalidArgumentError, match="must be positive"):
        time_windows(ts, 0)
    with pytest.raises(InvalidArgumentError, match="sorted"):
        time_windows(np.array([3, 1]), 1)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("10m", ("time", 600.0)),
        ("30s", ("time", 30.0)),
        ("1.5h", ("time", 5400.0)),
        ("5000rows", ("count", 5000.0)),
        ("250", ("count", 250.0)),
    ],
)
def test_parse_window(text: str, expected: tuple[str, float]) -> None:
    assert parse_window(text) == expected


def test_parse_window_refuses_nonsense() -> None:
    with pytest.raises(InvalidArgumentError, match="Cannot read the window"):
        parse_window("soon")


def test_a_polling_reader_decodes_each_part_once(
    write_log: Callable[..., Any], artifacts_url: str
) -> None:
    cache: dict[str, pa.Table] = {}
    write_log({"a": [1.0, 2.0]})
    assert read_prediction_log(artifacts_url, "default", "churn", cache=cache).num_rows == 2
    (first,) = cache
    cache[first] = cache[first].slice(0, 1)  # a cached part is not read again
    write_log({"a": [3.0]})
    again = read_prediction_log(artifacts_url, "default", "churn", cache=cache)
    assert sorted(again.column("feature.a").to_pylist()) == [1.0, 3.0]
    assert len(cache) == 2
    past = datetime.now(UTC) - timedelta(days=3)
    read_prediction_log(artifacts_url, "default", "churn", end=past, cache=cache)
    assert cache == {}  # parts out of range are dropped
