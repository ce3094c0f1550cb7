"""Prefect 3's side of the pipelines benchmark (own virtualenv, ephemeral local API).

    python prefect_side.py WORK WORKLOAD MODE

Same workloads and modes as kfp_side.py. Prefect runs tasks in threads of one process (no
per-step isolation); W4 uses the INPUTS cache policy. Prints one JSON line.
"""

from __future__ import annotations

import json
import logging
import os
import statistics
import sys
import time
from pathlib import Path

STEPS = 10


def main() -> None:
    work, workload, mode = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
    os.environ.setdefault("PREFECT_HOME", str(work / "prefect-home"))
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "ERROR")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    logging.disable(logging.WARNING)
    import numpy as np
    from prefect import flow, task
    from prefect.cache_policies import INPUTS, NO_CACHE

    policy = INPUTS if workload == "cached" else NO_CACHE

    @task(cache_policy=policy)
    def add_one(x: int) -> int:
        return x + 1

    @task(cache_policy=policy)
    def total(values: list[int]) -> int:
        return sum(values)

    @task(cache_policy=NO_CACHE)
    def make_array() -> np.ndarray:
        return np.ones(50 * 1024 * 1024 // 8)

    @task(cache_policy=NO_CACHE)
    def sum_array(data: np.ndarray) -> float:
        return float(data.sum())

    @flow(persist_result=workload == "cached")
    def chain() -> int:
        x = 0
        for _ in range(STEPS):
            x = add_one(x)
        return x

    @flow
    def fanout() -> int:
        futures = add_one.map(list(range(20)))
        return total(futures.result())

    @flow
    def handoff() -> float:
        return sum_array(make_array())

    pipeline, steps = {
        "chain": (chain, STEPS),
        "cached": (chain, STEPS),
        "fanout": (fanout, 21),
        "handoff": (handoff, 2),
    }[workload]
    start = time.perf_counter()
    result = pipeline()
    out = {"first_s": time.perf_counter() - start, "steps": steps, "result": result}
    if mode == "steady":
        timings = []
        for _ in range(3):
            start = time.perf_counter()
            pipeline()
            timings.append(time.perf_counter() - start)
        out["steady_s"] = statistics.median(timings)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
