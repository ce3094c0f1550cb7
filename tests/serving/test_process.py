"""``shipyard serve`` as a real process with two workers: the unmodified Triton HTTP
client, metrics summed over workers, small-request latency, graceful shutdown."""

from __future__ import annotations

import os
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from shipyard.config import Settings
from shipyard.errors import InvalidArgumentError, ModelNotFoundError
from shipyard.testing import free_port

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("serving-process")]


class ModelServerProcess:
    """``shipyard serve`` in its own session, on a free loopback port."""

    def __init__(self, settings: Settings, *args: str, workers: int = 1) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = Path(settings.home) / f"serve-{self.port}.log"
        self.log.parent.mkdir(parents=True, exist_ok=True)
        env = {
            **os.environ,
            "SHIPYARD_HOME": str(settings.home),
            "SHIPYARD_DB": settings.db,
            "SHIPYARD_ARTIFACTS": settings.artifacts,
        }
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        command = [
            sys.executable,
            "-m",
            "shipyard.cli.main",
            "serve",
            *args,
            "--port",
            str(self.port),
            "--workers",
            str(workers),
            "--log-level",
            "warning",
        ]
        with open(self.log, "wb") as out:
            self.process = subprocess.Popen(
                command, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
            )
        self._wait()

    def _wait(self, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"shipyard serve exited:\n{self.log.read_text()[-3000:]}")
            try:
                if httpx.get(f"{self.url}/v2/health/ready", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"shipyard serve did not start:\n{self.log.read_text()[-3000:]}")

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM (graceful: drain, publish the log); the exit code."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)
        return self.process.returncode


def register_into(settings: Settings, model: Any, X: np.ndarray, name: str = "fraud") -> int:
    from shipyard.client import Client
    from shipyard.models.logging import log_model

    client = Client(settings)
    experiment = client.create_experiment(f"serving-{name}")
    run = client.create_run(experiment)
    info = log_model(
        model,
        "model",
        registered_model_name=name,
        input_example=X[:5],
        run_id=run.info.run_id,
        client=client,
    )
    version = int(info.registered_model_version or 0)
    client.registry.set_alias(name, "champion", version)
    return version


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory, migrated_sqlite_template: Path) -> Settings:
    import shutil

    root = tmp_path_factory.mktemp("serve-process")
    shutil.copyfile(migrated_sqlite_template, root / "meta.db")
    (root / "artifacts").mkdir()
    return Settings(
        home=root / "home",
        db=f"sqlite:///{root / 'meta.db'}",
        artifacts=(root / "artifacts").as_uri(),
    )


@pytest.fixture(scope="module")
def server(store: Settings, logreg: Any, xy: Any) -> Iterator[ModelServerProcess]:
    register_into(store, logreg, xy[0])
    process = ModelServerProcess(
        store, "models:/fraud@champion", "--log-roll-rows", "1000000", workers=2
    )
    yield process
    process.stop()


def test_triton_http_client_runs_unmodified(
    server: ModelServerProcess, logreg: Any, xy: Any
) -> None:
    import tritonclient.http as triton

    client = triton.InferenceServerClient(url=f"127.0.0.1:{server.port}")
    assert client.is_server_live()
    assert client.is_server_ready()
    assert client.is_model_ready("fraud")
    assert not client.is_model_ready("other")
    metadata = client.get_model_metadata("fraud")
    assert metadata["inputs"] == [{"name": "input-0", "datatype": "FP64", "shape": [-1, 20]}]
    X = xy[0][:16].astype(np.float32)
    binary = triton.InferInput("input-0", list(X.shape), "FP32")
    binary.set_data_from_numpy(X)  # binary tensor extension (the client's default)
    result = client.infer("fraud", [binary])
    expected = logreg.predict(X.astype(np.float64))
    np.testing.assert_array_equal(result.as_numpy("predict"), expected)
    np.testing.assert_allclose(
        result.as_numpy("predict_proba"), logreg.predict_proba(X.astype(np.float64)), rtol=1e-6
    )
    as_json = triton.InferInput("input-0", list(X.shape), "FP32")
    as_json.set_data_from_numpy(X, binary_data=False)
    outputs = [triton.InferRequestedOutput("predict", binary_data=False)]
    result = client.infer("fraud", [as_json], outputs=outputs, request_id="r-1")
    np.testing.assert_array_equal(result.as_numpy("predict"), expected)
    assert result.get_response()["id"] == "r-1"
    assert result.as_numpy("predict_proba") is None
    client.close()


def test_python_client_and_metrics_summed_over_workers(
    server: ModelServerProcess, logreg: Any, xy: Any
) -> None:
    from shipyard.serving import Client

    with Client(server.url) as client:
        assert client.ready() and client.ready("fraud")
        assert client.metadata()["name"] == "shipyard"
        before = _count(client.metrics())
        rows = xy[0][:30]
        answers = [client.predict(row) for row in rows]
        assert [a["prediction"] for a in answers] == logreg.predict(rows).tolist()
        many = client.predict(rows[:4])
        assert many["predictions"] == logreg.predict(rows[:4]).tolist()
        outputs = client.infer("fraud", {"input-0": rows[:3]}, outputs=["predict"])
        assert outputs["predict"].tolist() == logreg.predict(rows[:3]).tolist()
        text = client.metrics()
        with pytest.raises(InvalidArgumentError, match="expected 20 features, got 3"):
            client.predict([1.0, 2.0, 3.0])
        with pytest.raises(ModelNotFoundError, match="not served here"):
            client.metadata("nope")
        assert client.models() == ["fraud"]
    assert _count(text) - before == 30 + 4 + 3
    assert "inference_queue_length" in text


def _count(text: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if line.startswith("model_predictions_total{"):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_small_requests_answer_in_milliseconds(server: ModelServerProcess, xy: Any) -> None:
    """TCP_NODELAY with several workers: no ~40 ms delayed-ACK stall per response."""
    body = {"features": xy[0][0].tolist()}
    with httpx.Client(base_url=server.url) as http:
        http.post("/predict", json=body)
        times = []
        for _ in range(30):
            started = time.perf_counter()
            assert http.post("/predict", json=body).status_code == 200
            times.append(time.perf_counter() - started)
    assert statistics.median(times) < 0.03


def test_sigterm_drains_and_publishes_the_prediction_log(
    server: ModelServerProcess, store: Settings, xy: Any
) -> None:
    import pyarrow.dataset as ds

    from shipyard.serving import Client

    with Client(server.url) as client:
        ids = [
            client.predict(row, request_id=f"last-{i}")["request_id"]
            for i, row in enumerate(xy[0][:10])
        ]
    assert server.stop() == 0
    root = Path(store.artifacts.removeprefix("file://")) / "prediction-logs/default/fraud"
    files = sorted(root.rglob("*.parquet"))
    assert files, server.log.read_text()[-2000:]
    logged = set(ds.dataset(files, format="parquet").to_table().column("request_id").to_pylist())
    assert set(ids) <= logged
    assert not list((store.home / "prediction-spool").rglob("*.jsonl"))
