"""Shipyard side of the drift workload; runs in the project's .venv, prints one JSON line.

    python shipyard_side.py full --n N      detect_drift(reference_df, current_df)
    python shipyard_side.py window --n N    Reference.from_data(reference_df), then
                                            detect_drift(reference, 10k-row window) repeatedly
    python shipyard_side.py live --n N      the live gauge update: a Profile of the reference,
                                            a 10k-row window written in the prediction log
                                            layout, then Monitor.update() repeatedly (read the
                                            Parquet window, drift, data quality, set gauges)

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


def live(n: int, updates: int) -> dict[str, object]:
    import tempfile
    import uuid
    from datetime import UTC, datetime, timedelta

    import numpy as np
    import pyarrow as pa

    from shipyard.monitoring.monitor import Monitor
    from shipyard.monitoring.profiles import Profile
    from shipyard.monitoring.windows import read_prediction_log, write_log_part

    reference_df, current = _data.frame(0, n), _data.frame(1, _data.WINDOW)
    start = time.perf_counter()
    profile = Profile.from_data(reference_df, categorical=_data.CATEGORICAL)
    profile_seconds = time.perf_counter() - start
    profile_bytes = len(profile.to_json())
    raw = detect_drift(reference_df, current, categorical=_data.CATEGORICAL)
    del reference_df
    now = datetime.now(UTC)
    size = len(current)
    columns = {
        "request_id": pa.array([uuid.uuid4().hex for _ in range(size)]),
        "ts": pa.array(
            [now - timedelta(milliseconds=10 * (size - i)) for i in range(size)],
            pa.timestamp("us", tz="UTC"),
        ),
        "model": pa.array(["bench"] * size),
        "version": pa.array(["1"] * size),
        "variant": pa.array(["champion"] * size),
        "latency_ms": pa.array(np.full(size, 2.0)),
        "prediction": pa.array(np.zeros(size)),
        "prediction_label": pa.array(["0"] * size),
        "confidence": pa.array(np.full(size, 0.9)),
        "features_sha256": pa.array(["0" * 64] * size),
    }
    for name in current.columns:
        values = current[name]
        columns[f"feature.{name}"] = pa.array(
            values.to_numpy() if name in _data.NUMERIC else values.astype(str).tolist()
        )
    root = tempfile.mkdtemp(prefix="shipyard-drift-bench-")
    url = Path(root).as_uri()
    write_log_part(url, "default", "bench", pa.table(columns))
    monitor = Monitor("bench", artifacts_url=url, window="1h", references={"1": profile})
    times, cpus, reads = [], [], []
    first = None
    snapshot = None
    for _ in range(updates + 1):
        cpu, began = time.process_time(), time.perf_counter()
        snapshot = monitor.update()
        elapsed, cpu_used = time.perf_counter() - began, time.process_time() - cpu
        if first is None:
            first = elapsed
            continue
        times.append(elapsed)
        cpus.append(cpu_used)
    for _ in range(10):  # a fresh read, without the monitor's cache of decoded parts
        began = time.perf_counter()
        read_prediction_log(url, "default", "bench", now - timedelta(hours=1), now)
        reads.append(time.perf_counter() - began)
    assert snapshot is not None and snapshot.rows == size
    status = snapshot.versions[0]
    assert status.drift is not None
    agree = all(status.drift[r.column].drifted == r.drifted for r in raw.columns)
    times.sort()
    return {
        "seconds": statistics.median(times),
        "p95_seconds": times[int(0.95 * (len(times) - 1))],
        "min_seconds": times[0],
        "first_window_seconds": first,
        "read_seconds": statistics.median(reads),
        "cpu": statistics.median(cpus),
        "windows": len(times),
        "prepare_seconds": profile_seconds,
        "profile_bytes": profile_bytes,
        "verdicts_agree": agree,
        "max_score_diff": max(abs(status.drift[r.column].score - r.score) for r in raw.columns),
        "share_drifted": status.drift.share_drifted,
        "columns": _columns(status.drift),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=("full", "window", "live"))
    parser.add_argument("--n", type=int, required=True)
    parser.add_argument("--windows", type=int, default=50)
    args = parser.parse_args()
    if args.mode == "full":
        result = full(args.n)
    elif args.mode == "window":
        result = window(args.n, args.windows)
    else:
        result = live(args.n, args.windows)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
