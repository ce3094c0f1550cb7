"""Shipyard's side of the pipelines benchmark (project .venv, embedded defaults).

    python shipyard_side.py WORK WORKLOAD MODE

Same workloads and modes as kfp_side.py. Every step runs in its own worker process; W1-W3
run with every step's cache off (``.cache(False)``); W4 reruns the chain with the cache
on, after one run that fills it. Prints one JSON line.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> None:
    work, workload, mode = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
    os.environ.setdefault("SHIPYARD_HOME", str(work / "home"))
    sys.path.insert(0, str(HERE))
    import shipyard_pipelines as bench

    from shipyard.pipelines import run_pipeline

    pipeline, steps = {
        "chain": (bench.chain, 10),
        "cached": (bench.chain_cached, 10),
        "fanout": (bench.fanout, 22),
        "handoff": (bench.handoff, 2),
    }[workload]
    cache = workload == "cached"

    def once() -> object:
        run = run_pipeline(pipeline).raise_for_status()
        last = run.steps[-1]
        return last.outputs.get("output", last.state)

    start = time.perf_counter()
    if cache:
        once()  # fill the cache; the timed runs below are fully cached
    result = once()
    out: dict[str, object] = {"first_s": time.perf_counter() - start, "steps": steps}
    out["result"] = str(result)
    if mode == "steady":
        timings = []
        for _ in range(3):
            start = time.perf_counter()
            once()
            timings.append(time.perf_counter() - start)
        out["steady_s"] = statistics.median(timings)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
