"""MLflow side of the tracking workloads; runs in MLflow's own virtualenv.

Usage: python mlflow_side.py WORKLOAD --home DIR [--n N] [--url URL]
WORKLOAD is t1 (log_metric calls), t2 (log_batch points), t3 (read a history),
t4 (create runs, then search), search (search an existing store) or build (create runs only).
Without --url the store is ``sqlite:///HOME/mlflow.db``. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import _data

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "true")

t_import = time.perf_counter()
import mlflow  # noqa: E402
from mlflow import MlflowClient  # noqa: E402
from mlflow.entities import Metric, Param  # noqa: E402

IMPORT_SECONDS = time.perf_counter() - t_import


def _experiment(client: MlflowClient, home: Path) -> str:
    found = client.get_experiment_by_name(_data.EXPERIMENT)
    if found is not None:
        return found.experiment_id
    return client.create_experiment(
        _data.EXPERIMENT, artifact_location=(home / "artifacts").as_uri()
    )


def t1(client: MlflowClient, exp_id: str, n: int) -> dict:
    mlflow.set_experiment(experiment_id=exp_id)
    log_metric = mlflow.log_metric
    start = time.perf_counter()
    with mlflow.start_run() as run:
        for step in range(n):
            log_metric(_data.T1_KEY, _data.t1_value(step), step=step)
    seconds = time.perf_counter() - start
    _check_count(client, run.info.run_id, _data.T1_KEY, n)
    return {"seconds": seconds, "per_call_ms": seconds / n * 1000}


def _check_count(client: MlflowClient, run_id: str, key: str, expected: int) -> None:
    """Not timed: every point must have been stored (a fast logger that drops is no win)."""
    got = len(client.get_metric_history(run_id, key))
    if got != expected:
        raise SystemExit(f"{key}: expected {expected} points, stored {got}")


def t2(client: MlflowClient, exp_id: str, n: int) -> dict:
    run_id = client.create_run(exp_id).info.run_id
    batches = [
        [Metric(key=k, value=v, timestamp=ts, step=s) for k, v, s, ts in rows]
        for rows in _data.t2_batches(n)
    ]
    start = time.perf_counter()
    for metrics in batches:
        client.log_batch(run_id, metrics=metrics)
    seconds = time.perf_counter() - start
    _check_count(client, run_id, _data.T2_KEYS[0], n // len(_data.T2_KEYS))
    return {"seconds": seconds, "calls": len(batches)}


def t3(client: MlflowClient, exp_id: str, n: int) -> dict:
    run_id = client.create_run(exp_id).info.run_id
    points = [Metric(key=k, value=v, timestamp=ts, step=s) for k, v, s, ts in _data.t3_points(n)]
    for i in range(0, n, 1000):
        client.log_batch(run_id, metrics=points[i : i + 1000])
    times = []
    for _ in range(5):
        start = time.perf_counter()
        history = client.get_metric_history(run_id, _data.T3_KEY)
        times.append(time.perf_counter() - start)
        if len(history) != n:
            raise SystemExit(f"expected {n} points, read {len(history)}")
    return {"seconds": statistics.median(times), "first": times[0], "min": min(times)}


def _build(client: MlflowClient, exp_id: str, n: int) -> float:
    start = time.perf_counter()
    for params, metrics in _data.t4_runs(n):
        run_id = client.create_run(exp_id).info.run_id
        client.log_batch(
            run_id,
            metrics=[
                Metric(key=k, value=v, timestamp=_data.BASE_TS, step=0) for k, v in metrics.items()
            ],
            params=[Param(k, v) for k, v in params.items()],
        )
    return time.perf_counter() - start


def _search(client: MlflowClient, exp_id: str, n: int) -> dict:
    times = []
    found = 0
    for _ in range(5):
        start = time.perf_counter()
        runs = client.search_runs(
            [exp_id],
            filter_string=_data.T4_FILTER,
            order_by=list(_data.T4_ORDER_BY),
            max_results=_data.T4_MAX_RESULTS,
        )
        times.append(time.perf_counter() - start)
        found = len(runs)
    expected = min(_data.T4_MAX_RESULTS, sum(1 for _, m in _data.t4_runs(n) if m["m1"] > 0.5))
    if found != expected:
        raise SystemExit(f"search returned {found} runs, expected {expected}")
    return {"search_seconds": statistics.median(times), "search_first": times[0]}


def t4(client: MlflowClient, exp_id: str, n: int) -> dict:
    create = _build(client, exp_id, n)
    return {"seconds": create, "create_seconds": create, **_search(client, exp_id, n)}


def search(client: MlflowClient, exp_id: str, n: int) -> dict:
    result = _search(client, exp_id, n)
    return {"seconds": result["search_seconds"], **result}


def build(client: MlflowClient, exp_id: str, n: int) -> dict:
    return {"seconds": _build(client, exp_id, n)}


WORKLOADS = {"t1": t1, "t2": t2, "t3": t3, "t4": t4, "search": search, "build": build}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("workload", choices=sorted(WORKLOADS))
    parser.add_argument("--home", type=Path, required=True)
    parser.add_argument("--n", type=int, required=True)
    parser.add_argument("--url", default="")
    args = parser.parse_args()
    uri = args.url or f"sqlite:///{args.home / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    client = MlflowClient(tracking_uri=uri)
    exp_id = _experiment(client, args.home)  # creates and migrates the DB: not timed
    result = WORKLOADS[args.workload](client, exp_id, args.n)
    result.update(
        side="mlflow",
        version=mlflow.__version__,
        workload=args.workload,
        n=args.n,
        import_seconds=IMPORT_SECONDS,
    )
    sys.stdout.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
