"""Metaflow's side of the pipelines benchmark (own virtualenv, local datastore).

    python metaflow_side.py WORK WORKLOAD MODE

Each ``run`` is a new ``python metaflow_flows.py run`` (Metaflow runs every step as its own
process); ``steady`` times three runs after a warm-up. Metaflow has no step cache, so W4
is not applicable. Prints one JSON line.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
STEPS = {"chain": 10, "fanout": 23, "handoff": 2}


def run_once(work: Path, workload: str) -> tuple[float, str]:
    env = {
        **os.environ,
        "BENCH_WORKLOAD": workload,
        "METAFLOW_DEFAULT_DATASTORE": "local",
        "METAFLOW_DATASTORE_SYSROOT_LOCAL": str(work / "metaflow"),
        "USERNAME": "bench",
    }
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, str(HERE / "metaflow_flows.py"), "--quiet", "run"],
        env=env,
        capture_output=True,
        text=True,
        cwd=work,
    )
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(done.stderr[-2000:])
    result = next(
        (
            line.split("RESULT", 1)[1].strip()
            for line in done.stdout.splitlines()
            if "RESULT" in line
        ),
        "",
    )
    return elapsed, result


def main() -> None:
    work, workload, mode = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
    if workload == "cached":
        print(json.dumps({"skipped": "Metaflow has no step cache"}))
        return
    first, result = run_once(work, workload)
    out: dict[str, object] = {"first_s": first, "steps": STEPS[workload], "result": result}
    if mode == "steady":
        out["steady_s"] = statistics.median(run_once(work, workload)[0] for _ in range(3))
    print(json.dumps(out))


if __name__ == "__main__":
    main()
