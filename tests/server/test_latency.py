"""Small requests over loopback answer in a few ms with several workers.

uvicorn's multiprocess listening socket keeps asyncio from setting TCP_NODELAY, and every
small response then waits ~40 ms for a delayed ACK; the runner sets the option itself.
The asyncio loop is used because it shows the trap (uvloop sets TCP_NODELAY on its own).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import httpx
import pytest

from shipyard._http import HttpSession
from shipyard.config import Settings
from shipyard.testing import ServerProcess
from shipyard.tracking.entities import Metric
from shipyard.tracking.http import HttpTrackingStore

pytestmark = pytest.mark.slow


def _median_ms(call: Callable[[], object], n: int = 200) -> float:
    for _ in range(20):
        call()
    times = []
    for _ in range(n):
        start = time.perf_counter()
        call()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def test_two_workers_answer_small_requests_in_a_few_ms(
    server_settings: Settings, record_property: Callable[[str, object], None]
) -> None:
    with ServerProcess(server_settings, workers=2, loop="asyncio") as server:
        with httpx.Client(base_url=server.base_url) as raw:
            health_ms = _median_ms(lambda: raw.get("/health").raise_for_status())
        with HttpSession(server.base_url) as http:
            store = HttpTrackingStore(http)
            run = store.create_run(store.create_experiment("latency").experiment_id)
            step = iter(range(10**9))
            batch_ms = _median_ms(
                lambda: store.log_batch(run.run_id, metrics=[Metric("m", 1.0, next(step))])
            )
    record_property("health_median_ms", round(health_ms, 2))
    record_property("log_batch_1_metric_median_ms", round(batch_ms, 2))
    print(f"\n2 workers: /health median {health_ms:.2f} ms, log_batch(1 metric) {batch_ms:.2f} ms")
    # 40 ms or more means the delayed-ACK trap is back.
    assert health_ms < 30
    assert batch_ms < 30
