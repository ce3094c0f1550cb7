"""MetricBuffer: metric points held in memory and written in batches.

Logging a metric appends a tuple to a list under a lock (a few microseconds); the points
reach the store in one ``log_batch`` call per run when a run has ``flush_size`` points
waiting, every ``flush_interval`` seconds from a daemon thread, and whenever someone calls
:meth:`MetricBuffer.flush` (``end_run``, ``shipyard.flush()``, interpreter exit).

A failed write is retried once. If it fails again the points go back to the head of the
queue and the error is raised: at once when the caller's own call triggered the flush, or
on that run's next ``add``/``flush`` when the background thread hit it. Nothing is
dropped without an error reaching the user.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import weakref
from typing import TYPE_CHECKING

from shipyard.tracking.entities import Metric

if TYPE_CHECKING:
    from shipyard.tracking.store import TrackingStore

logger = logging.getLogger(__name__)

# (key, value, step, timestamp_ms): a plain tuple is cheaper to build than a Metric.
_Point = tuple[str, float, int, int]
# Stores cap one log_batch (SqlTrackingStore: 50,000 metrics); larger queues are split.
_MAX_BATCH = 50_000


class MetricBuffer:
    """Per-run queues of metric points in front of one TrackingStore; thread-safe.

    Args:
        store: Where points are written, with ``store.log_batch(run_id, metrics=...)``.
        flush_size: Points of one run that trigger a write (``SHIPYARD_METRIC_FLUSH_SIZE``).
        flush_interval: Seconds between background writes
            (``SHIPYARD_METRIC_FLUSH_INTERVAL``).
    """

    def __init__(
        self, store: TrackingStore, *, flush_size: int = 1000, flush_interval: float = 2.0
    ) -> None:
        if flush_size < 1 or flush_interval <= 0:
            raise ValueError("flush_size must be >= 1 and flush_interval > 0")
        self.store = store
        self.flush_size = flush_size
        self.flush_interval = flush_interval
        self._pending: dict[str, list[_Point]] = {}
        self._errors: dict[str, BaseException] = {}
        self._lock = threading.Lock()  # guards _pending and _errors; held for microseconds
        self._write_lock = threading.Lock()  # one writer at a time keeps batches in order
        self._timer: threading.Thread | None = None
        self._stop = threading.Event()
        _buffers.add(self)

    def __repr__(self) -> str:
        return f"MetricBuffer({self.store!r}, pending={self.pending_count()})"

    def add(self, run_id: str, key: str, value: float, step: int, timestamp: int) -> None:
        """Queue one point; writes the run's queue when it reaches ``flush_size``."""
        with self._lock:
            if self._errors:
                self._raise_error(run_id)
            points = self._pending.get(run_id)
            if points is None:
                points = self._pending[run_id] = []
                if self._timer is None:
                    self._start_timer()
            points.append((key, value, step, timestamp))
            full = len(points) >= self.flush_size
        if full:
            self.flush(run_id)

    def add_many(self, run_id: str, points: list[_Point]) -> None:
        """Queue several points of one run at once (``log_metrics``)."""
        with self._lock:
            if self._errors:
                self._raise_error(run_id)
            queue = self._pending.get(run_id)
            if queue is None:
                queue = self._pending[run_id] = []
                if self._timer is None:
                    self._start_timer()
            queue.extend(points)
            full = len(queue) >= self.flush_size
        if full:
            self.flush(run_id)

    def pending_count(self, run_id: str | None = None) -> int:
        """Points not written yet, for one run or all."""
        with self._lock:
            if run_id is not None:
                return len(self._pending.get(run_id, ()))
            return sum(len(points) for points in self._pending.values())

    def flush(self, run_id: str | None = None) -> None:
        """Write the queued points of ``run_id`` (or of every run) now.

        Raises:
            ShipyardError: the store refused the batch twice, or an earlier background
                write of this run failed. The points stay queued for the next flush.
        """
        with self._lock:
            if self._errors:
                self._raise_error(run_id)
        with self._write_lock:
            run_ids = [run_id] if run_id is not None else self._run_ids()
            for rid in run_ids:
                self._write(rid)

    def discard(self, run_id: str) -> int:
        """Drop a run's queued points and pending error; returns how many were dropped."""
        with self._lock:
            self._errors.pop(run_id, None)
            return len(self._pending.pop(run_id, ()))

    def close(self) -> None:
        """Stop the background thread (queued points stay; call :meth:`flush` first)."""
        self._stop.set()

    # -- internals -------------------------------------------------------------------------

    def _run_ids(self) -> list[str]:
        with self._lock:
            return [rid for rid, points in self._pending.items() if points]

    def _raise_error(self, run_id: str | None) -> None:
        # Called with _lock held. A background failure is reported once, to the next
        # caller touching that run (or to a flush of everything).
        if run_id is None:
            rid = next(iter(self._errors))
        elif run_id in self._errors:
            rid = run_id
        else:
            return
        raise self._errors.pop(rid)

    def _write(self, run_id: str) -> None:
        # Called with _write_lock held.
        with self._lock:
            points = self._pending.get(run_id)
            if not points:
                return
            self._pending[run_id] = []
        metrics = [Metric(key, value, step, ts) for key, value, step, ts in points]
        for start in range(0, len(metrics), _MAX_BATCH):
            try:
                self._log_batch(run_id, metrics[start : start + _MAX_BATCH])
            except BaseException:
                with self._lock:  # back to the head of the queue, ahead of newer points
                    self._pending[run_id] = points[start:] + self._pending.get(run_id, [])
                raise

    def _log_batch(self, run_id: str, metrics: list[Metric]) -> None:
        try:
            self.store.log_batch(run_id, metrics=metrics)
        except Exception as exc:
            if not _is_retryable(exc):
                raise
            logger.warning(
                "Writing %d metric points of run %s failed, retrying: %s", len(metrics), run_id, exc
            )
            time.sleep(0.05)
            self.store.log_batch(run_id, metrics=metrics)

    def _start_timer(self) -> None:
        # Called with _lock held. The thread holds only a weak reference, so a buffer
        # nobody uses any more is collected and its thread ends.
        ref = weakref.ref(self)
        stop = self._stop
        interval = self.flush_interval
        self._timer = threading.Thread(
            target=_background_flush,
            args=(ref, stop, interval),
            name="shipyard-metrics",
            daemon=True,
        )
        self._timer.start()

    def _flush_in_background(self) -> None:
        with self._write_lock:
            for rid in self._run_ids():
                try:
                    self._write(rid)
                except Exception as exc:
                    logger.error("Metric points of run %s could not be written: %s", rid, exc)
                    with self._lock:
                        self._errors[rid] = exc


_buffers: weakref.WeakSet[MetricBuffer] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    # A forked child has no timer thread and may inherit a held lock; start clean. The
    # parent still owns the points queued before the fork, so the child forgets them.
    for buffer in list(_buffers):
        buffer._pending = {}
        buffer._errors = {}
        buffer._lock = threading.Lock()
        buffer._write_lock = threading.Lock()
        buffer._timer = None
        buffer._stop = threading.Event()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _is_retryable(exc: Exception) -> bool:
    """Errors the user must fix (bad input, unknown or finished run) are not retried."""
    from shipyard.errors import ConflictError, InvalidArgumentError, NotFoundError

    return not isinstance(exc, ConflictError | InvalidArgumentError | NotFoundError)


def _background_flush(
    ref: weakref.ReferenceType[MetricBuffer], stop: threading.Event, interval: float
) -> None:
    while not stop.wait(interval):
        buffer = ref()
        if buffer is None:
            return
        buffer._flush_in_background()
        del buffer
