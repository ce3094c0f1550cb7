"""Every Prometheus metric name monitoring exports or reads, declared in one place.

The monitor's gauges (this module builds them on a registry of their own, so several
monitors and tests never clash) and the model server's metrics the alert rules and
dashboards query. All monitor gauges carry ``model`` and ``version``; per-feature ones also
``feature_name``, as in the seed's ``model_feature_drift{feature_name}``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry, Gauge

__all__ = [
    "DATASET_DRIFT",
    "DATASET_DRIFT_SHARE",
    "FEATURE_DRIFT",
    "FEATURE_DRIFT_DETECTED",
    "FEATURE_MISSING_SHARE",
    "FEATURE_NEW_CATEGORY_SHARE",
    "FEATURE_OUT_OF_RANGE_SHARE",
    "LABELED_ROWS",
    "LAST_UPDATE",
    "PERFORMANCE",
    "PREDICTION_DRIFT",
    "PREDICTION_DRIFT_DETECTED",
    "SERVER_LATENCY",
    "SERVER_PREDICTIONS",
    "SERVER_QUEUE",
    "SERVER_REQUESTS",
    "UPDATE_SECONDS",
    "WINDOW_ROWS",
    "MonitorMetrics",
]

# --- exported by the monitor ---------------------------------------------------------------
FEATURE_DRIFT = "model_feature_drift"
FEATURE_DRIFT_DETECTED = "model_feature_drift_detected"
DATASET_DRIFT_SHARE = "model_dataset_drift_share"
DATASET_DRIFT = "model_dataset_drift"
PREDICTION_DRIFT = "model_prediction_drift"
PREDICTION_DRIFT_DETECTED = "model_prediction_drift_detected"
FEATURE_MISSING_SHARE = "model_feature_missing_share"
FEATURE_OUT_OF_RANGE_SHARE = "model_feature_out_of_range_share"
FEATURE_NEW_CATEGORY_SHARE = "model_feature_new_category_share"
WINDOW_ROWS = "model_monitor_window_rows"
LABELED_ROWS = "model_monitor_labeled_rows"
PERFORMANCE = "model_performance"
LAST_UPDATE = "model_monitor_last_update_timestamp_seconds"
UPDATE_SECONDS = "model_monitor_update_duration_seconds"

# --- exported by the model server (shipyard.serving) ----------------------------------------
SERVER_PREDICTIONS = "model_predictions_total"  # {model, model_version, prediction_class}
SERVER_LATENCY = "model_prediction_latency_seconds"  # histogram {model, model_version}
SERVER_QUEUE = "inference_queue_length"  # gauge {model}
SERVER_REQUESTS = "model_server_requests_total"  # {route, method, status}: no model label

_MV = ("model", "version")
_MVF = ("model", "version", "feature_name")


class MonitorMetrics:
    """The monitor's gauges, on their own registry (``registry`` for ``/metrics``).

    Args:
        registry: Where to register; a new ``CollectorRegistry`` when None.
    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        from prometheus_client import CollectorRegistry, Gauge

        self.registry = registry if registry is not None else CollectorRegistry()

        def gauge(name: str, doc: str, labels: tuple[str, ...]) -> Gauge:
            return Gauge(name, doc, labels, registry=self.registry)

        self.feature_drift = gauge(FEATURE_DRIFT, "Drift score of a feature (test score)", _MVF)
        self.feature_drift_detected = gauge(
            FEATURE_DRIFT_DETECTED, "1 when the feature's drift test says drifted", _MVF
        )
        self.dataset_drift_share = gauge(
            DATASET_DRIFT_SHARE, "Share of the model's features that drifted", _MV
        )
        self.dataset_drift = gauge(DATASET_DRIFT, "1 when the dataset counts as drifted", _MV)
        self.prediction_drift = gauge(PREDICTION_DRIFT, "Drift score of the model output", _MV)
        self.prediction_drift_detected = gauge(
            PREDICTION_DRIFT_DETECTED, "1 when the model output drifted", _MV
        )
        self.missing_share = gauge(
            FEATURE_MISSING_SHARE, "Share of missing values of a feature in the window", _MVF
        )
        self.out_of_range_share = gauge(
            FEATURE_OUT_OF_RANGE_SHARE,
            "Share of a numeric feature's values outside the reference's [min, max]",
            _MVF,
        )
        self.new_category_share = gauge(
            FEATURE_NEW_CATEGORY_SHARE,
            "Share of a categorical feature's values the reference never saw",
            _MVF,
        )
        self.window_rows = gauge(WINDOW_ROWS, "Rows in the current window", _MV)
        self.labeled_rows = gauge(LABELED_ROWS, "Window rows with a ground-truth label", _MV)
        self.performance = gauge(
            PERFORMANCE, "Model quality on the labeled window rows", (*_MV, "metric")
        )
        self.last_update = gauge(LAST_UPDATE, "When the monitor last updated", ("model",))
        self.update_seconds = gauge(UPDATE_SECONDS, "How long the last update took", ("model",))
