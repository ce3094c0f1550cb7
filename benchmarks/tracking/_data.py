"""The tracking workloads' data, generated identically for both sides (stdlib only).

Both side scripts import this file by its folder (the script's own directory is on
``sys.path``), so it must run under MLflow's virtualenv as well as Shipyard's.
"""

from __future__ import annotations

import random

EXPERIMENT = "bench"
T1_KEY = "loss"
T2_KEYS = tuple(f"m{i}" for i in range(10))
T2_BATCH = 1_000
T3_KEY = "loss"
T4_PARAMS = tuple(f"p{i}" for i in range(5))
T4_METRICS = tuple(f"m{i}" for i in range(5))
T4_FILTER = "metrics.m1 > 0.5"
T4_ORDER_BY = ("metrics.m2 DESC",)
T4_MAX_RESULTS = 100
BASE_TS = 1_700_000_000_000  # epoch ms, so both sides store identical timestamps


def t1_value(step: int) -> float:
    """The T1 loss curve: one float per step."""
    return 1.0 / (1.0 + step)


def t2_batches(points: int, batch: int = T2_BATCH):
    """(key, value, step, timestamp) tuples in batches; ten keys share each step."""
    rng = random.Random(2)
    rows = []
    n_keys = len(T2_KEYS)
    for i in range(points):
        step, k = divmod(i, n_keys)
        rows.append((T2_KEYS[k], rng.random(), step, BASE_TS + step))
        if len(rows) == batch:
            yield rows
            rows = []
    if rows:
        yield rows


def t3_points(points: int):
    """The history read back in T3: one key, ``points`` steps."""
    return [(T3_KEY, t1_value(s), s, BASE_TS + s) for s in range(points)]


def t4_runs(n_runs: int):
    """Per run: (params {key: str}, metrics {key: float}); m1 is uniform on [0, 1)."""
    rng = random.Random(4)
    for i in range(n_runs):
        params = {k: str(rng.choice((0.001, 0.01, 0.1, 1.0))) for k in T4_PARAMS}
        params["p0"] = str(i)
        metrics = {k: rng.random() for k in T4_METRICS}
        yield params, metrics
