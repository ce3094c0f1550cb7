"""Several processes logging to one run at once lose nothing and never see "database is
locked" (SQLite WAL + BEGIN IMMEDIATE + busy timeout; row-level locking on PostgreSQL)."""

from __future__ import annotations

import multiprocessing
import uuid
from collections.abc import Iterator
from multiprocessing.pool import Pool

import pytest

from shipyard.store.db import dispose_all, engine_for
from shipyard.tracking.entities import Metric
from shipyard.tracking.sql import SqlTrackingStore

WORKERS = 8
CALLS = 200
POINTS = 10  # per call and worker: 8 x 200 x 10 = 16,000 points, plus one shared series


def log_from_worker(
    db_url: str, workspace: str, run_id: str, worker: int, artifacts_url: str
) -> int:
    """Runs in a spawned process: log CALLS batches, each with the worker's own series and
    one point of a series every worker writes (so their upserts meet on one row)."""
    dispose_all()  # never reuse a parent's pooled connection
    try:
        store = SqlTrackingStore(engine_for(db_url), workspace, artifact_root=artifacts_url)
        for call in range(CALLS):
            own = [
                Metric(f"worker-{worker}", float(call * POINTS + i), call * POINTS + i, 1)
                for i in range(POINTS)
            ]
            shared = Metric("shared", float(worker), step=call, timestamp=1 + worker)
            store.log_batch(run_id, metrics=[*own, shared])
        return CALLS
    finally:
        dispose_all()


@pytest.fixture(scope="module")
def pool() -> Iterator[Pool]:
    """One pool of spawned processes for both backends (spawning costs about a second)."""
    with multiprocessing.get_context("spawn").Pool(WORKERS) as workers:
        yield workers


def test_parallel_writers_lose_no_points(
    pool: Pool, db_url: str, workspace: str, artifacts_url: str
) -> None:
    store = SqlTrackingStore(engine_for(db_url), workspace, artifact_root=artifacts_url)
    run = store.create_run(store.create_experiment(f"concurrency-{uuid.uuid4().hex}").experiment_id)

    done = pool.starmap(
        log_from_worker,
        [(db_url, workspace, run.run_id, worker, artifacts_url) for worker in range(WORKERS)],
    )

    assert done == [CALLS] * WORKERS
    for worker in range(WORKERS):
        history = store.get_metric_history(run.run_id, f"worker-{worker}")
        assert [m.step for m in history] == list(range(CALLS * POINTS))
        assert [m.value for m in history] == [float(i) for i in range(CALLS * POINTS)]
    shared = store.get_metric_history(run.run_id, "shared")
    assert len(shared) == WORKERS * CALLS
    latest = store.get_run(run.run_id).data.metrics
    assert latest["shared"] == float(WORKERS - 1)  # last step, newest timestamp
    assert latest["worker-0"] == float(CALLS * POINTS - 1)
