"""Nothing acknowledged is lost: kill -9 the server while a client logs metrics, restart it
on the same database, and every point the server acknowledged is there."""

from __future__ import annotations

import random
import sqlite3
import threading
import time
from pathlib import Path

import pytest

from shipyard._http import HttpSession
from shipyard.config import Settings
from shipyard.errors import ShipyardError
from shipyard.testing import ServerProcess
from shipyard.tracking.entities import Metric
from shipyard.tracking.http import HttpTrackingStore

pytestmark = pytest.mark.slow

BATCH = 20


def _log_until_failure(url: str, run_id: str, first_step: int, acked: list[int]) -> None:
    """Log batches of BATCH points until the server goes away; record what was acked."""
    with HttpSession(url, retries=0, timeout=10) as http:
        store = HttpTrackingStore(http)
        step = first_step
        while True:
            steps = list(range(step, step + BATCH))
            try:
                store.log_batch(run_id, metrics=[Metric("loss", 1.0 / (s + 1), s) for s in steps])
            except ShipyardError:
                return
            acked.extend(steps)
            step += BATCH


def test_acknowledged_metrics_survive_kill_9(server_settings: Settings, tmp_path: Path) -> None:
    rng = random.Random(7)
    acked: list[int] = []
    server = ServerProcess(server_settings)
    server.start()
    try:
        with HttpSession(server.base_url) as http:
            store = HttpTrackingStore(http)
            run_id = store.create_run(store.create_experiment("crash").experiment_id).run_id
        for _round in range(2):
            before = len(acked)
            writer = threading.Thread(
                target=_log_until_failure,
                args=(server.base_url, run_id, (acked[-1] + 1) if acked else 0, acked),
            )
            writer.start()
            deadline = time.monotonic() + 10
            while len(acked) < before + 200 and time.monotonic() < deadline:
                time.sleep(0.01)
            time.sleep(rng.uniform(0, 0.2))  # kill at an arbitrary moment mid-stream
            server.kill()
            writer.join(timeout=30)
            assert not writer.is_alive()
            assert len(acked) >= before + 200, server.log_text()
            server.close()
            server = ServerProcess(server_settings)
            server.start()

        with HttpSession(server.base_url) as http:
            history = HttpTrackingStore(http).get_metric_history(run_id, "loss")
        stored = {m.step for m in history}
        missing = sorted(set(acked) - stored)
        assert not missing, f"{len(missing)} acknowledged points lost, e.g. {missing[:10]}"
        # Batches are atomic: a batch is either all there or not at all.
        assert len(stored) % BATCH == 0
    finally:
        server.close()

    db_path = server_settings.db.removeprefix("sqlite:///")
    with sqlite3.connect(db_path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
