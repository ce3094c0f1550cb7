"""MetricBuffer: batching, background flushes, retries and never losing a point.

These are unit tests of the buffer's own logic, so the store is a small recording fake;
the fluent tests run the buffer against the real stores.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence

import pytest

from shipyard.errors import BackendError, ConflictError
from shipyard.tracking.buffer import MetricBuffer
from shipyard.tracking.entities import Metric


class RecordingStore:
    """Records each log_batch; ``fail`` decides per call whether to raise."""

    def __init__(self, fail: Callable[[int], Exception | None] | None = None) -> None:
        self.batches: list[tuple[str, list[Metric]]] = []
        self.calls = 0
        self.fail = fail
        self.lock = threading.Lock()

    def log_batch(self, run_id: str, *, metrics: Sequence[Metric] = (), **_: object) -> None:
        with self.lock:
            self.calls += 1
            error = self.fail(self.calls) if self.fail else None
            if error is not None:
                raise error
            self.batches.append((run_id, list(metrics)))

    def points(self, run_id: str) -> list[Metric]:
        return [m for rid, batch in self.batches if rid == run_id for m in batch]


def wait_for(condition: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return condition()


def test_points_are_written_in_one_batch_when_the_run_reaches_flush_size() -> None:
    store = RecordingStore()
    buffer = MetricBuffer(store, flush_size=5, flush_interval=60)  # type: ignore[arg-type]
    for step in range(4):
        buffer.add("r1", "loss", float(step), step, 1000 + step)
    assert store.batches == []
    assert buffer.pending_count("r1") == 4

    buffer.add("r1", "loss", 4.0, 4, 1004)

    assert len(store.batches) == 1
    assert store.points("r1") == [Metric("loss", float(s), s, 1000 + s) for s in range(5)]
    assert buffer.pending_count() == 0


def test_flush_size_counts_per_run() -> None:
    store = RecordingStore()
    buffer = MetricBuffer(store, flush_size=3, flush_interval=60)  # type: ignore[arg-type]
    buffer.add("a", "m", 1.0, 0, 1)
    buffer.add("b", "m", 1.0, 0, 1)
    buffer.add("a", "m", 2.0, 1, 2)
    assert store.batches == []
    buffer.add("a", "m", 3.0, 2, 3)
    assert [rid for rid, _ in store.batches] == ["a"]
    assert buffer.pending_count("b") == 1


def test_explicit_flush_writes_one_batch_per_run() -> None:
    store = RecordingStore()
    buffer = MetricBuffer(store, flush_size=1000, flush_interval=60)  # type: ignore[arg-type]
    for i in range(10):
        buffer.add("a", "m", float(i), i, i)
        buffer.add("b", "m", float(i), i, i)
    buffer.flush()
    assert sorted((rid, len(batch)) for rid, batch in store.batches) == [("a", 10), ("b", 10)]
    buffer.flush()  # nothing pending: no empty batches
    assert store.calls == 2


def test_points_are_written_every_flush_interval_by_a_background_thread() -> None:
    store = RecordingStore()
    buffer = MetricBuffer(store, flush_size=1000, flush_interval=0.05)  # type: ignore[arg-type]
    buffer.add("r1", "acc", 0.5, 0, 1)
    assert wait_for(lambda: len(store.points("r1")) == 1)
    buffer.add("r1", "acc", 0.6, 1, 2)
    assert wait_for(lambda: len(store.points("r1")) == 2)
    buffer.close()


def test_add_many_queues_several_points_at_once() -> None:
    store = RecordingStore()
    buffer = MetricBuffer(store, flush_size=4, flush_interval=60)  # type: ignore[arg-type]
    buffer.add_many("r", [("a", 1.0, 0, 1), ("b", 2.0, 0, 1)])
    assert store.batches == []
    buffer.add_many("r", [("c", 3.0, 0, 1), ("d", 4.0, 0, 1)])
    assert [m.key for m in store.points("r")] == ["a", "b", "c", "d"]


def test_a_transient_failure_is_retried_once_and_nothing_is_lost() -> None:
    store = RecordingStore(fail=lambda call: BackendError("db busy") if call == 1 else None)
    buffer = MetricBuffer(store, flush_size=100, flush_interval=60)  # type: ignore[arg-type]
    buffer.add("r", "m", 1.0, 0, 1)
    buffer.flush()
    assert store.calls == 2
    assert store.points("r") == [Metric("m", 1.0, 0, 1)]


def test_a_flush_that_fails_twice_raises_and_keeps_the_points_for_the_next_flush() -> None:
    store = RecordingStore(fail=lambda call: BackendError("db down") if call <= 2 else None)
    buffer = MetricBuffer(store, flush_size=100, flush_interval=60)  # type: ignore[arg-type]
    buffer.add("r", "m", 1.0, 0, 1)
    with pytest.raises(BackendError, match="db down"):
        buffer.flush()
    assert buffer.pending_count("r") == 1
    buffer.add("r", "m", 2.0, 1, 2)

    buffer.flush()

    assert [m.value for m in store.points("r")] == [1.0, 2.0]  # original order kept


def test_a_failure_on_the_size_trigger_raises_at_the_logging_call() -> None:
    store = RecordingStore(fail=lambda call: BackendError("db down"))
    buffer = MetricBuffer(store, flush_size=2, flush_interval=60)  # type: ignore[arg-type]
    buffer.add("r", "m", 1.0, 0, 1)
    with pytest.raises(BackendError, match="db down"):
        buffer.add("r", "m", 2.0, 1, 2)
    assert buffer.pending_count("r") == 2


def test_a_background_failure_is_raised_on_that_runs_next_call() -> None:
    failing = threading.Event()
    failing.set()
    store = RecordingStore(fail=lambda call: BackendError("db down") if failing.is_set() else None)
    buffer = MetricBuffer(store, flush_size=1000, flush_interval=0.05)  # type: ignore[arg-type]
    buffer.add("r", "m", 1.0, 0, 1)
    assert wait_for(lambda: bool(buffer._errors))
    failing.clear()

    buffer.add("other", "m", 1.0, 0, 1)  # another run is not affected
    with pytest.raises(BackendError, match="db down"):
        buffer.add("r", "m", 2.0, 1, 2)

    buffer.add("r", "m", 3.0, 2, 3)  # reported once; the queued points are kept
    buffer.flush()
    assert [m.value for m in store.points("r")] == [1.0, 3.0]
    buffer.close()


def test_errors_the_user_must_fix_are_not_retried() -> None:
    store = RecordingStore(fail=lambda call: ConflictError("Run r is FINISHED"))
    buffer = MetricBuffer(store, flush_size=100, flush_interval=60)  # type: ignore[arg-type]
    buffer.add("r", "m", 1.0, 0, 1)
    with pytest.raises(ConflictError, match="FINISHED"):
        buffer.flush()
    assert store.calls == 1
    assert buffer.discard("r") == 1


def test_concurrent_writers_lose_and_duplicate_nothing() -> None:
    store = RecordingStore()
    buffer = MetricBuffer(store, flush_size=97, flush_interval=0.01)  # type: ignore[arg-type]

    def work(thread: int) -> None:
        for step in range(2000):
            buffer.add("r", f"t{thread}", float(step), step, step)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    buffer.flush()
    buffer.close()

    points = store.points("r")
    assert len(points) == 8 * 2000
    assert len({(m.key, m.step) for m in points}) == 8 * 2000


def test_huge_queues_are_split_into_batches_the_store_accepts() -> None:
    store = RecordingStore()
    buffer = MetricBuffer(store, flush_size=10**6, flush_interval=60)  # type: ignore[arg-type]
    buffer.add_many("r", [("m", 1.0, i, i) for i in range(120_000)])
    buffer.flush()
    assert [len(batch) for _, batch in store.batches] == [50_000, 50_000, 20_000]


def test_adding_a_point_takes_microseconds() -> None:
    buffer = MetricBuffer(RecordingStore(), flush_size=10**6, flush_interval=60)  # type: ignore[arg-type]
    start = time.perf_counter()
    for step in range(10_000):
        buffer.add("r", "loss", 0.1, step, 1)
    elapsed = time.perf_counter() - start
    assert elapsed < 0.5, f"10k adds took {elapsed:.3f}s"


def test_bad_settings_are_rejected() -> None:
    with pytest.raises(ValueError, match="flush_size"):
        MetricBuffer(RecordingStore(), flush_size=0)  # type: ignore[arg-type]
