"""Adaptive micro-batching: concurrent requests for one model become one model call.

Requests wait in a bounded queue. One task per model takes what is queued (up to
``max_batch_size`` rows) and runs the model in a thread, so the event loop keeps reading
requests meanwhile; those pile up and form the next batch. A call of a few rows that
recently took well under a millisecond runs on the loop instead, since handing it to a
thread would cost more CPU than the call. Nothing waits for a batch
to fill while the model is idle: a lone request runs at once, and ``max_latency_ms``
bounds only how long a forming batch keeps collecting requests that are still arriving.
Past ``max_queue`` waiting requests, :meth:`MicroBatcher.submit` refuses with
:class:`OverloadedError` (HTTP 503 with Retry-After) instead of letting memory and
latency grow.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from shipyard.errors import ShipyardError

__all__ = ["BatchItem", "MicroBatcher", "OverloadedError"]

logger = logging.getLogger("shipyard.serving")


class OverloadedError(ShipyardError):
    """The model's queue is full, or the server is shutting down (503, Retry-After)."""

    http_status = 503
    exit_code = 6
    code = "overloaded"
    headline = "Overloaded"

    def __init__(self, message: str, *, retry_after: float = 1.0, hint: str | None = None):
        self.retry_after = max(1, math.ceil(retry_after))
        super().__init__(
            message,
            hint=hint or f"Retry after {self.retry_after}s, or add replicas/workers.",
        )


@dataclass(eq=False)
class BatchItem:
    """One request's rows waiting for the model, with what the log and metrics need."""

    batch: Any
    rows: int
    future: asyncio.Future[tuple[np.ndarray, np.ndarray | None]]
    meta: dict[str, Any] = field(default_factory=dict)
    started: float = field(default_factory=time.perf_counter)


def _concat(parts: Sequence[Any]) -> Any:
    if len(parts) == 1:
        return parts[0]
    if isinstance(parts[0], np.ndarray):
        return np.concatenate(parts)
    import pandas as pd

    return pd.concat(parts, ignore_index=True)


#: Largest batch that may run on the event loop (see ``inline_ms``).
INLINE_ROWS = 4

#: ``on_batch(items, batch, predictions, probabilities)``, called on the event loop.
BatchCallback = Callable[[list[BatchItem], Any, np.ndarray, "np.ndarray | None"], None]


class MicroBatcher:
    """Merge concurrent requests into model calls of up to ``max_batch_size`` rows.

    Args:
        run: the model call, ``run(batch) -> (predictions, probabilities | None)``; it
            runs in this batcher's own thread.
        max_batch_size: most rows per model call (a larger single request runs alone).
        max_latency_ms: longest a forming batch collects requests still arriving.
        max_queue: most requests waiting; past it, :meth:`submit` raises OverloadedError.
        name: for thread names and messages.
        on_batch: called after each successful call with the batch's items and outputs.
        inline_ms: a batch of at most ``INLINE_ROWS`` rows runs on the event loop itself
            when such calls recently took less than this (0: always in the thread).
    """

    def __init__(
        self,
        run: Callable[[Any], tuple[np.ndarray, np.ndarray | None]],
        *,
        max_batch_size: int = 64,
        max_latency_ms: float = 2.0,
        max_queue: int = 1024,
        name: str = "model",
        on_batch: BatchCallback | None = None,
        inline_ms: float = 0.5,
    ) -> None:
        if max_batch_size < 1 or max_queue < 1 or max_latency_ms < 0:
            raise ValueError("max_batch_size and max_queue must be >= 1, max_latency_ms >= 0")
        self._run = run
        self.max_batch_size = max_batch_size
        self.max_latency = max_latency_ms / 1000.0
        self.max_queue = max_queue
        self.name = name
        self.on_batch = on_batch
        self._queue: deque[BatchItem] = deque()
        self._wakeup: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._executor = ThreadPoolExecutor(1, thread_name_prefix=f"shipyard-model-{name}")
        self._closing = False
        self._busy = 0
        #: Seconds per row of recent calls (for Retry-After), smoothed.
        self._row_seconds = 0.001
        #: Seconds of recent small calls, smoothed; starts high, so the first calls run
        #: in the thread and measure the model.
        self._call_seconds = 1.0
        self.inline_seconds = inline_ms / 1000.0

    def __repr__(self) -> str:
        return f"MicroBatcher({self.name!r}, queued={len(self._queue)})"

    @property
    def queued(self) -> int:
        """Requests waiting for the model (not counting the batch it is running)."""
        return len(self._queue)

    @property
    def in_flight(self) -> int:
        """Requests queued or in the running batch."""
        return len(self._queue) + self._busy

    def _start(self) -> None:
        loop = asyncio.get_running_loop()
        self._wakeup = asyncio.Event()
        self._task = loop.create_task(self._worker(), name=f"shipyard-batcher-{self.name}")

    async def submit(
        self, batch: Any, rows: int, meta: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Queue ``rows`` rows and wait for their (predictions, probabilities).

        Raises:
            OverloadedError: the queue is full, or the batcher is closing.
        """
        if self._closing:
            raise OverloadedError(f"Model '{self.name}' is shutting down.", retry_after=1)
        if len(self._queue) >= self.max_queue:
            wait = len(self._queue) * self._row_seconds * self.max_batch_size / 8
            raise OverloadedError(
                f"Model '{self.name}' has {len(self._queue)} requests waiting (the limit is "
                f"{self.max_queue}).",
                retry_after=wait,
            )
        loop = asyncio.get_running_loop()
        if self._task is None or self._task.done() or self._task.get_loop() is not loop:
            self._start()
        item = BatchItem(batch, rows, loop.create_future(), meta or {})
        self._queue.append(item)
        assert self._wakeup is not None
        self._wakeup.set()
        return await item.future

    def _take(self) -> list[BatchItem]:
        items: list[BatchItem] = []
        rows = 0
        while self._queue and rows < self.max_batch_size:
            nxt = self._queue[0]
            if items and rows + nxt.rows > self.max_batch_size:
                break
            items.append(self._queue.popleft())
            rows += nxt.rows
        return items

    async def _worker(self) -> None:
        assert self._wakeup is not None
        loop = asyncio.get_running_loop()
        while True:
            if not self._queue:
                if self._closing:
                    return
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            items = self._take()
            rows = sum(i.rows for i in items)
            if rows < self.max_batch_size and self.max_latency > 0:
                # Requests in the middle of arriving join this batch: yield to the loop
                # while new ones keep coming, up to max_latency.
                deadline = loop.time() + self.max_latency
                while rows < self.max_batch_size and loop.time() < deadline:
                    before = len(self._queue)
                    await asyncio.sleep(0)
                    if len(self._queue) == before:
                        break
                    more = self._take()
                    items += more
                    rows += sum(i.rows for i in more)
            await self._call(loop, items, rows)

    async def _call(
        self, loop: asyncio.AbstractEventLoop, items: list[BatchItem], rows: int
    ) -> None:
        self._busy = len(items)
        started = time.perf_counter()
        try:
            batch = _concat([i.batch for i in items])
            if self._call_seconds < self.inline_seconds and rows <= INLINE_ROWS:
                # Cheaper than the two thread switches a hand-off costs, and short
                # enough not to hold up the loop.
                pred, proba = self._run(batch)
            else:
                pred, proba = await loop.run_in_executor(self._executor, self._run, batch)
        except Exception as exc:  # the error belongs to the requests, not the batcher
            for item in items:
                if not item.future.done():
                    item.future.set_exception(exc)
            return
        finally:
            self._busy = 0
        elapsed = time.perf_counter() - started
        self._row_seconds = 0.8 * self._row_seconds + 0.2 * elapsed / max(rows, 1)
        if rows <= INLINE_ROWS:
            self._call_seconds = 0.8 * self._call_seconds + 0.2 * elapsed
        start = 0
        for item in items:
            end = start + item.rows
            if not item.future.done():
                item.future.set_result(
                    (pred[start:end], None if proba is None else proba[start:end])
                )
            start = end
        if self.on_batch is not None:
            try:
                self.on_batch(items, batch, pred, proba)
            except Exception:  # metrics or logging must never fail a prediction
                logger.exception("after-batch hook of %s failed", self.name)

    async def close(self, timeout: float = 30.0) -> None:
        """Refuse new requests, finish the queued ones, stop the thread."""
        self._closing = True
        if self._task is not None:
            assert self._wakeup is not None
            self._wakeup.set()
            try:
                await asyncio.wait_for(asyncio.shield(self._task), timeout)
            except TimeoutError:
                self._task.cancel()
                for item in self._queue:
                    if not item.future.done():
                        item.future.set_exception(
                            OverloadedError(f"Model '{self.name}' shut down before answering.")
                        )
        self._executor.shutdown(wait=False)
