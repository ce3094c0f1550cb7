"""End to end with a real Prometheus: it scrapes a running model server (`shipyard serve`) and
the drift monitor (`shipyard monitor run`) while the test sends drifted traffic; queries on
Prometheus's HTTP API then see the prediction rate and the drift gauge above threshold."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from shipyard.testing import free_port

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("prometheus")]


def load_tour() -> Any:
    """examples/monitoring_tour.py as a module."""
    import importlib.util

    path = Path(__file__).resolve().parents[2] / "examples" / "monitoring_tour.py"
    spec = importlib.util.spec_from_file_location("monitoring_tour", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _wait_http(url: str, process: subprocess.Popen[bytes], log: Path, timeout: float = 60) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args} exited:\n{log.read_text()[-4000:]}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=1).status_code == 200:
                return
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer:\n{log.read_text()[-4000:]}")


@pytest.fixture
def processes() -> Iterator[Callable[..., subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []

    def start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
        with log.open("wb") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", "shipyard.cli.main", *args],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
        started.append(process)
        return process

    yield start
    for process in reversed(started):
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_prometheus_sees_predictions_and_drift_of_a_served_model(
    tmp_path: Path,
    fresh_sqlite_url: str,
    prometheus: Callable[[dict[str, list[str]]], Any],
    processes: Callable[..., subprocess.Popen[bytes]],
) -> None:
    import httpx
    from sklearn.linear_model import LogisticRegression

    from shipyard.client import Client
    from shipyard.config import Settings
    from shipyard.models.logging import log_model
    from shipyard.monitoring.profiles import attach_profile

    artifacts = tmp_path / "artifacts"
    artifacts.mkdir()
    settings = Settings(home=tmp_path / "home", db=fresh_sqlite_url, artifacts=artifacts.as_uri())
    client = Client(settings)
    rng = np.random.default_rng(0)
    train = pd.DataFrame(rng.normal(0, 1, (3000, 4)), columns=["f0", "f1", "f2", "f3"])
    y = (train["f0"] + train["f1"] > 0).astype(int)
    model = LogisticRegression().fit(train, y)
    run = client.create_run(client.create_experiment("monitoring-e2e"))
    info = log_model(
        model,
        "model",
        registered_model_name="churn",
        input_example=train[:5],
        run_id=run.info.run_id,
        client=client,
    )
    client.set_terminated(run.info.run_id)
    version = int(info.registered_model_version or 0)
    client.registry.set_alias("churn", "champion", version)
    attach_profile("churn", train, version=version, client=client, predictions=model.predict(train))

    env = {k: v for k, v in os.environ.items() if not k.startswith("SHIPYARD_")}
    env |= {
        "SHIPYARD_HOME": str(settings.home),
        "SHIPYARD_DB": settings.db,
        "SHIPYARD_ARTIFACTS": settings.artifacts,
    }
    serve_port, monitor_port = free_port(), free_port()
    server = processes(
        [
            "serve",
            "models:/churn@champion",
            "--port",
            str(serve_port),
            "--log-roll-seconds",
            "0.5",
            "--poll-seconds",
            "0",
            "--log-level",
            "warning",
        ],
        env,
        tmp_path / "serve.log",
    )
    monitor = processes(
        [
            "monitor",
            "run",
            "-m",
            "churn",
            "--interval",
            "1",
            "--window",
            "10m",
            "--metrics-port",
            str(monitor_port),
        ],
        env,
        tmp_path / "monitor.log",
    )
    _wait_http(f"http://127.0.0.1:{serve_port}/health", server, tmp_path / "serve.log")
    _wait_http(f"http://127.0.0.1:{monitor_port}/metrics", monitor, tmp_path / "monitor.log")
    prom = prometheus(
        {
            "model-server": [f"127.0.0.1:{serve_port}/metrics"],
            "drift-monitor": [f"127.0.0.1:{monitor_port}/metrics"],
        }
    )

    # Prometheus starts scraping a few seconds after it is ready (discovery is batched).
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and set(prom.targets_up().values()) != {"up"}:
        time.sleep(0.3)
    assert set(prom.targets_up().values()) == {"up"}, prom.targets_up()

    # Drifted traffic: f0 shifted by two standard deviations, for a few seconds.
    with httpx.Client(base_url=f"http://127.0.0.1:{serve_port}", timeout=10) as http:
        deadline = time.monotonic() + 5
        sent = 0
        while time.monotonic() < deadline:
            rows = rng.normal(0, 1, (50, 4))
            rows[:, 0] += 2.0
            response = http.post("/predict", json={"instances": rows.tolist()})
            assert response.status_code == 200, response.text
            sent += 50
            time.sleep(0.1)
    assert sent >= 500

    rate = prom.wait_for('sum(rate(model_predictions_total{model="churn"}[1m])) > 0')
    assert rate, (prom.targets_up(), (tmp_path / "serve.log").read_text()[-2000:])
    drift = prom.wait_for('max(model_feature_drift{model="churn",feature_name="f0"}) > 0.1')
    assert drift, (prom.targets_up(), (tmp_path / "monitor.log").read_text()[-3000:])
    assert float(drift[0]["value"][1]) > 1.0  # a 2-std shift: normed Wasserstein ~2
    share = prom.query('model_dataset_drift_share{model="churn"}')
    assert share and float(share[0]["value"][1]) == pytest.approx(0.25)
    assert prom.query('model_prediction_drift{model="churn"}'), "prediction drift exported"
    calm = prom.query('model_feature_drift{model="churn",feature_name="f1"} < 0.1')
    assert calm, "an unshifted feature stays below the threshold"

    # The tour's helper the quickstart calls shows the same drift, and a report.
    tour = load_tour()
    snapshot = tour.watch_served_model(
        f"http://127.0.0.1:{serve_port}", "churn", settings=settings, out_dir=tmp_path / "watch"
    )
    assert snapshot.versions[0].drift.drifted_columns == ("f0",)
    assert (tmp_path / "watch" / "report.html").is_file()
