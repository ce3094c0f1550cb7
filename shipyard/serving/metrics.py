"""The model server's Prometheus metrics, and their exposition at ``/metrics``.

Names follow the seed guide: ``model_predictions_total{model, model_version,
prediction_class}`` and ``model_prediction_latency_seconds``, plus requests by route and
status, the ``inference_queue_length`` gauge an HPA scales on, the batch-size histogram
and model load time. ``model_feature_drift`` belongs to monitoring and is not defined here.

With several worker processes, ``PROMETHEUS_MULTIPROC_DIR`` (set by ``shipyard serve``
before the workers start) makes every worker write its values to files there, and
``/metrics`` in any worker sums them.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

import numpy as np
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

__all__ = ["CONTENT_TYPE_LATEST", "MULTIPROC_ENV", "ServingMetrics", "multiprocess_enabled"]

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

#: The seed's buckets (0.1 .. 5.0 s), with smaller ones below: a model call is often < 1 ms.
LATENCY_BUCKETS = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
)  # fmt: skip
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


def multiprocess_enabled() -> bool:
    """Whether metrics are shared between worker processes through files."""
    return bool(os.environ.get(MULTIPROC_ENV))


class ServingMetrics:
    """Every metric of one model server app, on its own registry (so apps in one
    process, as in tests, never collide)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.predictions = Counter(
            "model_predictions_total",
            "Predictions served, by model version and predicted class.",
            ["model", "model_version", "prediction_class"],
            registry=r,
        )
        self.latency = Histogram(
            "model_prediction_latency_seconds",
            "Time from a request reaching the model's queue to its prediction.",
            ["model", "model_version"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.requests = Counter(
            "model_server_requests_total",
            "HTTP requests by route template, method and status code.",
            ["route", "method", "status"],
            registry=r,
        )
        self.request_latency = Histogram(
            "model_server_request_duration_seconds",
            "HTTP request duration by route template.",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.queue = Gauge(
            "inference_queue_length",
            "Requests waiting for or inside a model call.",
            ["model"],
            multiprocess_mode="livesum",
            registry=r,
        )
        self.batch_size = Histogram(
            "model_batch_size",
            "Rows per model call (adaptive micro-batching).",
            ["model", "model_version"],
            buckets=BATCH_BUCKETS,
            registry=r,
        )
        self.load_seconds = Gauge(
            "model_load_seconds",
            "Seconds it took to load (download, verify, unpickle) a model version.",
            ["model", "model_version"],
            multiprocess_mode="max",
            registry=r,
        )
        self.rejected = Counter(
            "model_rejected_requests_total",
            "Requests refused with 503 because the model's queue was full.",
            ["model"],
            registry=r,
        )
        self.loaded = Gauge(
            "model_version_served",
            "1 for each model version this server answers with, by variant.",
            ["model", "model_version", "variant"],
            multiprocess_mode="max",
            registry=r,
        )
        self._handles: dict[tuple[str, ...], Any] = {}

    def record_batch(
        self,
        model: str,
        version: str,
        predictions: np.ndarray,
        latencies: Iterable[float],
        rows: int,
        classify: bool,
    ) -> None:
        """Count one model call: predictions per class, each request's latency, rows."""
        handles = self._handles.get((model, version))
        if handles is None:
            handles = (
                self.latency.labels(model, version),
                self.batch_size.labels(model, version),
            )
            self._handles[(model, version)] = handles
        latency, batch = handles
        for seconds in latencies:
            latency.observe(seconds)
        batch.observe(rows)
        if classify and predictions.ndim == 1 and rows == 1:
            self.predictions.labels(model, version, str(predictions[0])).inc()
        elif classify and predictions.ndim == 1:
            values, counts = np.unique(predictions, return_counts=True)
            for value, count in zip(values.tolist(), counts.tolist(), strict=True):
                self.predictions.labels(model, version, str(value)).inc(count)
        else:
            self.predictions.labels(model, version, "none").inc(rows)

    def exposition(self) -> bytes:
        """The text exposition format of every metric (summed over workers when
        multiprocess mode is on)."""
        if multiprocess_enabled():
            from prometheus_client import multiprocess

            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
            return generate_latest(registry)
        return generate_latest(self.registry)
