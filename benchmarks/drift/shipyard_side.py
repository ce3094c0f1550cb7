"""Shipyard side of the drift workload; runs in the project's .venv, prints one JSON line.

    python shipyard_side.py full --n N      detect_drift(reference_df, current_df)
    python shipyard_side.py window --n N    Reference.from_data(reference_df), then
                                            detect_drift(reference, 10k-row window) repeatedly

Only the drift computation is timed; building the frames is not.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _data

from shipyard.monitoring import Reference, detect_drift
from shipyard.monitoring import stats as _stats  # noqa: F401  (imports are not timed)


def _columns(report) -> dict[str, dict[str, object]]:
    return {
        r.column: {"test": r.test, "score": r.score, "drifted": r.drifted} for r in report.columns
    }


def full(n: int) -> dict[str, object]:
    reference, current = _data.frame(0, n), _data.frame(1, n)
    fingerprint = _data.fingerprint(reference) + _data.fingerprint(current)
    cpu, start = time.process_time(), time.perf_counter()
    report = detect_drift(reference, current, categorical=_data.CATEGORICAL)
    seconds = time.perf_counter() - start
    return {
        "seconds": seconds,
        "cpu": time.process_time() - cpu,
        "share_drifted": report.share_drifted,
        "dataset_drift": report.drifted,
        "columns": _columns(report),
        "fingerprint": fingerprint,
    }


def window(n: int, windows: int) -> dict[str, object]:
    reference_df, current = _data.frame(0, n), _data.frame(1, n)
    start = time.perf_counter()
    reference = Reference.from_data(reference_df, categorical=_data.CATEGORICAL)
    prepared = time.perf_counter() - start
    del reference_df
    size = _data.WINDOW
    slices = max(1, n // size)
    times, cpus = [], []
    first = None
    for i in range(windows + 1):
        lo = (i % slices) * size
        chunk = current.iloc[lo : lo + size]
        cpu, start = time.process_time(), time.perf_counter()
        report = detect_drift(reference, chunk)
        elapsed, cpu_used = time.perf_counter() - start, time.process_time() - cpu
        if first is None:
            first = elapsed  # reported apart: the first call also pages code in
            first_report = report
            continue
        times.append(elapsed)
        cpus.append(cpu_used)
    times.sort()
    return {
        "prepare_seconds": prepared,
        "first_window_seconds": first,
        "seconds": statistics.median(times),
        "p95_seconds": times[int(0.95 * (len(times) - 1))],
        "min_seconds": times[0],
        "cpu": statistics.median(cpus),
        "windows": len(times),
        "share_drifted": first_report.share_drifted,
        "columns": _columns(first_report),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=("full", "window"))
    parser.add_argument("--n", type=int, required=True)
    parser.add_argument("--windows", type=int, default=50)
    args = parser.parse_args()
    result = full(args.n) if args.mode == "full" else window(args.n, args.windows)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
