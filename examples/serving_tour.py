"""Serving tour: register a model, serve it with `shipyard serve`, send it traffic through
the Python client and the Open Inference Protocol, and read the server's metrics.

Runs on the embedded defaults (SQLite and local files under SHIPYARD_HOME). The steps are
functions taking a model URI, so other examples can serve their own champion:

    process, url = start_server("models:/quickstart@champion")
    send_traffic(url, rows)
    stop_server(process)
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

METRIC_PREFIXES = (
    "model_predictions_total",
    "model_prediction_latency_seconds_count",
    "model_batch_size_count",
    "inference_queue_length",
    'model_server_requests_total{method="POST"',
)


def say(message: str) -> None:
    print(f"\n==> {message}")


def train_and_register(name: str = "serving-tour") -> tuple[str, np.ndarray]:
    """Fit a small classifier, log and register it, point @champion at it.

    Returns:
        The model URI (``models:/<name>@champion``) and some rows to send.
    """
    from sklearn.datasets import make_classification
    from sklearn.linear_model import LogisticRegression

    import shipyard

    X, y = make_classification(n_samples=500, n_features=20, n_informative=6, random_state=7)
    with shipyard.start_run(run_name="serving-tour"):
        model = LogisticRegression(max_iter=1000).fit(X, y)
        shipyard.log_metric("accuracy", float(model.score(X, y)))
        info = shipyard.log_model(model, "model", registered_model_name=name, input_example=X[:5])
    client = shipyard.Client()
    client.registry.set_alias(name, "champion", int(info.registered_model_version or 0))
    return f"models:/{name}@champion", X[:50]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(
    model_uri: str,
    *,
    port: int | None = None,
    workers: int = 1,
    extra_args: Sequence[str] = (),
    timeout: float = 120.0,
) -> tuple[subprocess.Popen[bytes], str]:
    """Run ``shipyard serve model_uri`` in a subprocess; wait until it is ready.

    Returns:
        The process and the server's base URL.
    """
    from shipyard.serving import Client

    port = port or _free_port()
    command = [
        sys.executable, "-m", "shipyard.cli.main", "serve", model_uri,
        "--port", str(port), "--workers", str(workers), "--log-level", "warning",
        *extra_args,
    ]  # fmt: skip
    process = subprocess.Popen(command, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    client = Client(url, timeout=2.0)
    deadline = time.monotonic() + timeout
    while not client.ready():
        if process.poll() is not None or time.monotonic() > deadline:
            stop_server(process)
            raise RuntimeError(f"`shipyard serve {model_uri}` did not start")
        time.sleep(0.2)
    client.close()
    return process, url


def stop_server(process: subprocess.Popen[bytes]) -> int:
    """SIGTERM: the server drains queued requests and publishes its prediction log."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)
    # uvicorn exits by re-raising the SIGTERM it handled: that is a clean stop.
    return 0 if process.returncode == -signal.SIGTERM else process.returncode


def send_traffic(url: str, rows: np.ndarray, token: str | None = None) -> list[dict[str, Any]]:
    """One /predict call per row, then one OIP V2 infer call for all rows."""
    from shipyard.serving import Client

    with Client(url, token=token) as client:
        name = client.models()[0]
        answers = [client.predict(row) for row in rows]
        inputs = [tensor["name"] for tensor in client.metadata(name)["inputs"]]
        if len(inputs) == 1:  # one [rows, features] tensor
            tensors = {inputs[0]: rows}
        else:  # a model fitted on a DataFrame: one tensor per column
            tensors = {column: rows[:, i] for i, column in enumerate(inputs)}
        outputs = client.infer(name, tensors, outputs=["predict"])
        assert outputs["predict"].tolist() == [a["prediction"] for a in answers]
    return answers


def show_metrics(url: str, prefixes: Sequence[str] = METRIC_PREFIXES) -> list[str]:
    """The /metrics lines starting with one of ``prefixes``."""
    from shipyard.serving import Client

    with Client(url) as client:
        text = client.metrics()
    return [line for line in text.splitlines() if line.startswith(tuple(prefixes))]


def main() -> None:
    say("Training and registering a classifier")
    uri, rows = train_and_register()
    print(f"registered {uri}")

    say(f"Serving it: shipyard serve {uri}")
    process, url = start_server(uri)
    try:
        say(f"Sending {len(rows)} predictions to {url}/predict and one OIP V2 infer call")
        answers = send_traffic(url, rows)
        first = answers[0]
        print(
            f"first answer: prediction={first['prediction']} "
            f"confidence={first['confidence']:.3f} version={first['model_version']} "
            f"in {first['processing_time_ms']:.2f} ms"
        )
        say("A few /metrics lines")
        for line in show_metrics(url):
            print(line)
    finally:
        code = stop_server(process)
    say(f"Server stopped (exit code {code}); prediction log published under the artifact root")


if __name__ == "__main__":
    main()
