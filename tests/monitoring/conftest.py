"""Monitoring fixtures: prediction log files written in the serving layout, and a real
Prometheus server started on a free port with a generated scrape config."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest

PROMETHEUS = os.environ.get("SHIPYARD_TEST_PROMETHEUS", "/usr/bin/prometheus")
PROMTOOL = os.environ.get("SHIPYARD_TEST_PROMTOOL", "/usr/bin/promtool")


def log_table(
    features: dict[str, Any],
    *,
    model: str = "churn",
    version: str = "1",
    end: datetime | None = None,
    seconds: float = 300.0,
    predictions: Any = None,
    confidence: Any = None,
    request_ids: list[str] | None = None,
    seed: int = 0,
) -> Any:
    """A prediction log table (the serving layout's columns) holding ``features``."""
    import pyarrow as pa

    n = len(next(iter(features.values())))
    rng = np.random.default_rng(seed)
    end = end or datetime.now(UTC)
    offsets = np.sort(rng.uniform(0, seconds, n))[::-1]
    ts = [end - timedelta(seconds=float(s)) for s in offsets]
    preds = np.asarray(predictions if predictions is not None else rng.integers(0, 2, n), float)
    columns: dict[str, Any] = {
        "request_id": pa.array(request_ids or [uuid.uuid4().hex for _ in range(n)], pa.string()),
        "ts": pa.array(ts, pa.timestamp("us", tz="UTC")),
        "model": pa.array([model] * n, pa.string()),
        "version": pa.array([version] * n, pa.string()),
        "variant": pa.array(["champion"] * n, pa.string()),
        "latency_ms": pa.array(rng.uniform(1, 5, n), pa.float64()),
        "prediction": pa.array(preds, pa.float64()),
        "prediction_label": pa.array([str(p) for p in preds], pa.string()),
        "confidence": pa.array(
            confidence if confidence is not None else rng.uniform(0.5, 1, n), pa.float64()
        ),
        "features_sha256": pa.array(["0" * 64] * n, pa.string()),
    }
    for name, values in features.items():
        arr = np.asarray(values)
        if arr.dtype.kind in "OUS":
            columns[f"feature.{name}"] = pa.array([str(v) for v in arr], pa.string())
        else:
            columns[f"feature.{name}"] = pa.array(arr.astype(float), pa.float64())
    return pa.table(columns)


@pytest.fixture
def write_log(artifacts_url: str) -> Callable[..., Any]:
    """Write prediction log rows under ``artifacts_url``; returns the table written."""
    from shipyard.monitoring.windows import write_log_part

    def write(features: dict[str, Any], *, workspace: str = "default", **options: Any) -> Any:
        table = log_table(features, **options)
        write_log_part(artifacts_url, workspace, options.get("model", "churn"), table)
        return table

    return write


@pytest.fixture(scope="session")
def promtool() -> str:
    from tests.conftest import service_unavailable

    if not os.access(PROMTOOL, os.X_OK):
        service_unavailable("promtool", f"{PROMTOOL} is not installed (Debian package prometheus)")
    return PROMTOOL


class PrometheusServer:
    """A running Prometheus: ``url`` for the HTTP API, ``query()`` for instant queries."""

    def __init__(self, url: str, process: subprocess.Popen[bytes], log: Path) -> None:
        self.url = url
        self.process = process
        self.log = log

    def query(self, expr: str) -> list[dict[str, Any]]:
        import httpx

        response = httpx.get(f"{self.url}/api/v1/query", params={"query": expr}, timeout=10)
        response.raise_for_status()
        body = response.json()
        assert body["status"] == "success", body
        return list(body["data"]["result"])

    def targets_up(self) -> dict[str, str]:
        import httpx

        body = httpx.get(f"{self.url}/api/v1/targets", timeout=10).json()
        targets = body["data"]["activeTargets"]
        return {t["scrapeUrl"]: t["health"] for t in targets} or {"none": "unknown"}

    def wait_for(self, expr: str, timeout: float = 45.0) -> list[dict[str, Any]]:
        """Poll ``expr`` until it returns a sample (bounded); the last result otherwise."""
        deadline = time.monotonic() + timeout
        result: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            result = self.query(expr)
            if result:
                return result
            time.sleep(0.5)
        return result


@pytest.fixture
def prometheus(tmp_path: Path) -> Iterator[Callable[[dict[str, list[str]]], PrometheusServer]]:
    """Start Prometheus scraping ``{job: [host:port/path, ...]}`` every second."""
    import httpx
    import yaml

    from shipyard.testing import free_port
    from tests.conftest import service_unavailable

    if not os.access(PROMETHEUS, os.X_OK):
        service_unavailable("Prometheus", f"{PROMETHEUS} is not installed")
    started: list[subprocess.Popen[bytes]] = []

    def start(jobs: dict[str, list[str]]) -> PrometheusServer:
        folder = tmp_path / f"prometheus-{len(started)}"
        folder.mkdir()
        scrape = []
        for job, targets in jobs.items():
            paths = {t.partition("/")[2] for t in targets}
            assert len(paths) == 1, "one metrics path per job"
            scrape.append(
                {
                    "job_name": job,
                    "scrape_interval": "1s",
                    "scrape_timeout": "1s",
                    "metrics_path": "/" + paths.pop(),
                    "static_configs": [{"targets": [t.partition("/")[0] for t in targets]}],
                }
            )
        config = {"global": {"scrape_interval": "1s"}, "scrape_configs": scrape}
        (folder / "prometheus.yml").write_text(yaml.safe_dump(config))
        port = free_port()
        log = folder / "prometheus.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                [
                    PROMETHEUS,
                    f"--config.file={folder / 'prometheus.yml'}",
                    f"--storage.tsdb.path={folder / 'data'}",
                    f"--web.listen-address=127.0.0.1:{port}",
                    "--storage.tsdb.retention.time=1h",
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        started.append(process)
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"Prometheus exited:\n{log.read_text()[-3000:]}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/-/ready", timeout=1).status_code == 200:
                    return PrometheusServer(url, process, log)
            time.sleep(0.2)
        raise RuntimeError(f"Prometheus did not get ready:\n{log.read_text()[-3000:]}")

    yield start
    for process in started:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    shutil.rmtree(tmp_path, ignore_errors=True)
