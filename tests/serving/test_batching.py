"""Adaptive micro-batching: merged calls, bounded queue, draining on close."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import httpx
import numpy as np
import pytest

from shipyard.serving.batching import MicroBatcher, OverloadedError


def _recording(sizes: list[int], delay: float = 0.0, gate: threading.Event | None = None) -> Any:
    def run(batch: np.ndarray) -> tuple[np.ndarray, None]:
        if gate is not None:
            gate.wait(5)
        if delay:
            time.sleep(delay)
        sizes.append(len(batch))
        return batch[:, 0] * 2, None

    return run


def test_concurrent_requests_share_model_calls_and_get_their_own_rows() -> None:
    sizes: list[int] = []

    async def scenario() -> list[Any]:
        batcher = MicroBatcher(_recording(sizes, delay=0.01), max_batch_size=16)
        rows = [np.array([[float(i)]]) for i in range(40)]
        results = await asyncio.gather(*(batcher.submit(r, 1) for r in rows))
        await batcher.close()
        return results

    results = asyncio.run(scenario())
    assert [float(pred[0]) for pred, _ in results] == [2.0 * i for i in range(40)]
    assert sum(sizes) == 40
    assert max(sizes) == 16  # merged up to max_batch_size
    assert len(sizes) < 40 // 4


def test_a_lone_request_does_not_wait_for_a_batch_to_fill() -> None:
    sizes: list[int] = []

    async def scenario() -> float:
        batcher = MicroBatcher(_recording(sizes), max_batch_size=64, max_latency_ms=500)
        started = time.perf_counter()
        await batcher.submit(np.ones((1, 1)), 1)
        elapsed = time.perf_counter() - started
        await batcher.close()
        return elapsed

    assert asyncio.run(scenario()) < 0.25
    assert sizes == [1]


def test_a_large_request_runs_alone_and_batches_never_exceed_the_limit() -> None:
    sizes: list[int] = []

    async def scenario() -> None:
        gate = threading.Event()
        batcher = MicroBatcher(_recording(sizes, gate=gate), max_batch_size=4)
        first = asyncio.ensure_future(batcher.submit(np.ones((1, 1)), 1))
        await asyncio.sleep(0.01)  # the first call is running (blocked on the gate)
        rest = [batcher.submit(np.ones((n, 1)), n) for n in (3, 2, 10, 1)]
        waiting = asyncio.gather(*rest)
        await asyncio.sleep(0.01)
        gate.set()
        await first
        await waiting
        await batcher.close()

    asyncio.run(scenario())
    # 3 + 2 would pass 4 rows, so 2 waits; 10 rows run alone.
    assert sizes == [1, 3, 2, 10, 1]


def test_full_queue_refuses_with_retry_after() -> None:
    async def scenario() -> OverloadedError:
        gate = threading.Event()
        batcher = MicroBatcher(_recording([], gate=gate), max_queue=2)
        running = asyncio.ensure_future(batcher.submit(np.ones((1, 1)), 1))
        await asyncio.sleep(0.01)
        queued = [asyncio.ensure_future(batcher.submit(np.ones((1, 1)), 1)) for _ in range(2)]
        await asyncio.sleep(0)
        with pytest.raises(OverloadedError) as refused:
            await batcher.submit(np.ones((1, 1)), 1)
        gate.set()
        await asyncio.gather(running, *queued)  # accepted requests still get answers
        await batcher.close()
        return refused.value

    error = asyncio.run(scenario())
    assert error.http_status == 503 and error.retry_after >= 1
    assert "2 requests waiting (the limit is 2)" in error.message


def test_close_drains_queued_requests_then_refuses_new_ones() -> None:
    sizes: list[int] = []

    async def scenario() -> None:
        batcher = MicroBatcher(_recording(sizes, delay=0.02), max_batch_size=2)
        pending = [asyncio.ensure_future(batcher.submit(np.ones((1, 1)), 1)) for _ in range(6)]
        await asyncio.sleep(0)
        await batcher.close()
        assert all(p.done() and p.exception() is None for p in pending)
        with pytest.raises(OverloadedError, match="shutting down"):
            await batcher.submit(np.ones((1, 1)), 1)

    asyncio.run(scenario())
    assert sum(sizes) == 6


def test_model_errors_reach_every_request_of_the_batch() -> None:
    def broken(batch: Any) -> Any:
        raise ValueError("boom")

    async def scenario() -> list[Any]:
        batcher = MicroBatcher(broken)
        results = await asyncio.gather(
            *(batcher.submit(np.ones((1, 1)), 1) for _ in range(3)), return_exceptions=True
        )
        await batcher.close()
        return results

    assert all(isinstance(r, ValueError) for r in asyncio.run(scenario()))


async def _fire(app: Any, count: int, body: dict[str, Any]) -> list[httpx.Response]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://model") as http:
        return await asyncio.gather(*(http.post("/predict", json=body) for _ in range(count)))


def test_server_merges_concurrent_predictions(
    register: Any, logreg: Any, make_app: Any, xy: Any
) -> None:
    register(logreg)
    app = make_app(max_batch_size=32, log_sample=0)
    responses = asyncio.run(_fire(app, 40, {"features": xy[0][0].tolist()}))
    assert {r.status_code for r in responses} == {200}
    metrics = app.state.model_server.metrics.exposition().decode()
    count = _sample(metrics, 'model_batch_size_count{model="fraud",model_version="1"}')
    total = _sample(metrics, 'model_batch_size_sum{model="fraud",model_version="1"}')
    assert total == 40
    assert count < 40  # fewer model calls than requests


def test_server_answers_503_with_retry_after_when_the_queue_is_full(
    register: Any, logreg: Any, make_app: Any, xy: Any
) -> None:
    register(logreg)
    app = make_app(max_queue=2, log_sample=0)
    responses = asyncio.run(_fire(app, 30, {"features": xy[0][0].tolist()}))
    codes = [r.status_code for r in responses]
    assert codes.count(200) >= 2 and codes.count(503) > 0
    refused = next(r for r in responses if r.status_code == 503)
    assert int(refused.headers["retry-after"]) >= 1
    assert refused.json()["error"]["code"] == "overloaded"
    metrics = app.state.model_server.metrics.exposition().decode()
    assert _sample(metrics, 'model_rejected_requests_total{model="fraud"}') == codes.count(503)


def _sample(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} not in metrics")


def test_fast_small_calls_move_onto_the_loop_and_big_ones_stay_in_the_thread() -> None:
    threads: list[tuple[int, str]] = []

    def run(batch: np.ndarray) -> tuple[np.ndarray, None]:
        threads.append((len(batch), threading.current_thread().name))
        return batch[:, 0], None

    async def scenario() -> None:
        batcher = MicroBatcher(run, inline_ms=50)
        for _ in range(40):
            await batcher.submit(np.ones((1, 1)), 1)
        await batcher.submit(np.ones((100, 1)), 100)
        await batcher.close()

    asyncio.run(scenario())
    assert threads[0][1].startswith("shipyard-model")  # measured in the thread first
    assert threads[-2] == (1, threading.main_thread().name)  # then inline
    assert threads[-1][0] == 100 and threads[-1][1].startswith("shipyard-model")
