"""Several processes registering versions of one model at once get distinct numbers."""

from __future__ import annotations

import multiprocessing
from typing import Any

from shipyard.registry.sql import SqlRegistryStore

PROCESSES = 4
VERSIONS_EACH = 10


def _register_versions(db_url: str, workspace: str, start: Any, results: Any, worker: int) -> None:
    from shipyard.store.db import engine_for

    store = SqlRegistryStore(engine_for(db_url), workspace)
    start.wait(timeout=60)
    numbers = []
    try:
        for i in range(VERSIONS_EACH):
            version = store.create_model_version("churn", f"s3://w{worker}/{i}", run_id=None)
            numbers.append(version.version)
            if i == VERSIONS_EACH // 2:
                store.set_alias("churn", f"w{worker}", version.version)
        results.put((worker, numbers, None))
    except Exception as exc:  # reported to the parent, which fails the test
        results.put((worker, numbers, repr(exc)))


def test_concurrent_version_creation_gives_distinct_numbers(db_url: str, workspace: str) -> None:
    from shipyard.store.db import engine_for

    store = SqlRegistryStore(engine_for(db_url), workspace)
    store.create_registered_model("churn")
    # spawn: children start clean, without the parent's pooled connections or threads.
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Event()
    results = ctx.Queue()
    procs = [
        ctx.Process(target=_register_versions, args=(db_url, workspace, start, results, w))
        for w in range(PROCESSES)
    ]
    for p in procs:
        p.start()
    start.set()
    outcomes = [results.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    results.close()
    results.join_thread()

    errors = [(w, err) for w, _, err in outcomes if err]
    assert errors == []
    numbers = sorted(n for _, ns, _ in outcomes for n in ns)
    assert numbers == list(range(1, PROCESSES * VERSIONS_EACH + 1))
    for _, ns, _ in outcomes:
        assert ns == sorted(ns)  # each process sees its own versions increase
    listed = [v.version for v in store.list_model_versions("churn")]
    assert listed == numbers
    assert store.get_registered_model("churn").latest_version == PROCESSES * VERSIONS_EACH
    assert len(store.alias_history("churn")) == PROCESSES
