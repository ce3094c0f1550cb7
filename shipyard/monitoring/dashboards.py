"""Generated Grafana dashboard and Prometheus Operator ServiceMonitor for a served model.

The dashboard (schema 39, a ``${datasource}`` Prometheus variable) has one row each for
traffic (throughput by version and class, errors), latency (p50/p90/p99 from the
histogram), the inference queue, drift (dataset drift share, prediction drift, one series
per feature), data quality and performance on labeled rows. The ServiceMonitor scrapes
``/metrics`` every 15 s and ``/model-metrics`` every 30 s keeping only ``model_*`` series,
as the seed's does.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from shipyard.errors import InvalidArgumentError
from shipyard.monitoring import metrics as names

__all__ = ["grafana_dashboard", "service_monitor"]


def _k8s_name(text: str) -> str:
    name = re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")
    return name[:63].strip("-") or "model"


def _target(expr: str, legend: str, ref: str) -> dict[str, Any]:
    return {
        "datasource": {"type": "prometheus", "uid": "${datasource}"},
        "expr": expr,
        "legendFormat": legend,
        "refId": ref,
    }


class _Layout:
    def __init__(self) -> None:
        self.panels: list[dict[str, Any]] = []
        self.y = 0
        self.x = 0
        self.next_id = 1

    def row(self, title: str) -> None:
        self.x = 0
        self.y += 0 if not self.panels else 8
        self.panels.append(
            {
                "type": "row",
                "title": title,
                "id": self._id(),
                "collapsed": False,
                "gridPos": {"h": 1, "w": 24, "x": 0, "y": self.y},
                "panels": [],
            }
        )
        self.y += 1

    def _id(self) -> int:
        self.next_id += 1
        return self.next_id - 1

    def panel(
        self,
        title: str,
        targets: list[tuple[str, str]],
        *,
        unit: str = "short",
        width: int = 12,
        threshold: float | None = None,
    ) -> None:
        if self.x + width > 24:
            self.x = 0
            self.y += 8
        field: dict[str, Any] = {"unit": unit}
        if threshold is not None:
            field["thresholds"] = {
                "mode": "absolute",
                "steps": [{"color": "green", "value": None}, {"color": "red", "value": threshold}],
            }
            field["custom"] = {"thresholdsStyle": {"mode": "line"}}
        self.panels.append(
            {
                "type": "timeseries",
                "title": title,
                "id": self._id(),
                "datasource": {"type": "prometheus", "uid": "${datasource}"},
                "gridPos": {"h": 8, "w": width, "x": self.x, "y": self.y},
                "fieldConfig": {"defaults": field, "overrides": []},
                "options": {"legend": {"displayMode": "list", "placement": "bottom"}},
                "targets": [
                    _target(expr, legend, chr(ord("A") + i))
                    for i, (expr, legend) in enumerate(targets)
                ],
            }
        )
        self.x += width


def grafana_dashboard(
    model: str,
    features: Sequence[str],
    *,
    drift_threshold: float = 0.1,
    drift_share: float = 0.5,
    latency_slo_seconds: float = 0.5,
) -> dict[str, Any]:
    """A Grafana dashboard (JSON model) for one served model.

    Args:
        model: The model name (the ``model`` label of every series).
        features: The model's input features; each gets a drift series and a quality one.
        drift_threshold: Line drawn on the per-feature drift panel.
        drift_share: Line drawn on the dataset drift panel.
        latency_slo_seconds: Line drawn on the latency panel.

    Returns:
        The dashboard dict: import it in Grafana or provision it from a ConfigMap.
    """
    if not model:
        raise InvalidArgumentError("The model name is empty.")
    m = model.replace("\\", "\\\\").replace('"', '\\"')
    sel = f'model="{m}"'
    lay = _Layout()
    lay.row("Traffic")
    lay.panel(
        "Predictions per second",
        [
            (
                f"sum by (model_version) (rate({names.SERVER_PREDICTIONS}{{{sel}}}[1m]))",
                "v{{model_version}}",
            ),
            (
                f"sum by (prediction_class) (rate({names.SERVER_PREDICTIONS}{{{sel}}}[1m]))",
                "class {{prediction_class}}",
            ),
        ],
        unit="reqps",
    )
    lay.panel(
        "Errors",
        [
            (
                f'sum by (status) (rate({names.SERVER_REQUESTS}{{status=~"5.."}}[1m]))',
                "{{status}}",
            ),
            (
                f'sum(rate({names.SERVER_REQUESTS}{{status=~"5.."}}[5m])) / '
                f"sum(rate({names.SERVER_REQUESTS}[5m]))",
                "error share",
            ),
        ],
        unit="short",
    )
    lay.row("Latency and queue")
    lay.panel(
        "Prediction latency",
        [
            (
                f"histogram_quantile({q}, sum by (le) "
                f"(rate({names.SERVER_LATENCY}_bucket{{{sel}}}[5m])))",
                f"p{int(q * 100)}",
            )
            for q in (0.5, 0.9, 0.99)
        ],
        unit="s",
        threshold=latency_slo_seconds,
    )
    lay.panel(
        "Inference queue length",
        [(f"max({names.SERVER_QUEUE}{{{sel}}})", "queue")],
        threshold=None,
    )
    lay.row("Drift")
    lay.panel(
        "Share of drifted features",
        [
            (f"{names.DATASET_DRIFT_SHARE}{{{sel}}}", "v{{version}}"),
            (f"{names.PREDICTION_DRIFT}{{{sel}}}", "prediction drift v{{version}}"),
        ],
        unit="percentunit",
        threshold=drift_share,
    )
    lay.panel(
        "Drift score per feature",
        [
            (
                f'{names.FEATURE_DRIFT}{{{sel},feature_name="{f}"}}',
                f"{f} v{{{{version}}}}",
            )
            for f in features
        ]
        or [(f"{names.FEATURE_DRIFT}{{{sel}}}", "{{feature_name}} v{{version}}")],
        threshold=drift_threshold,
    )
    lay.row("Data quality")
    lay.panel(
        "Missing values",
        [(f"{names.FEATURE_MISSING_SHARE}{{{sel}}}", "{{feature_name}}")],
        unit="percentunit",
        width=8,
    )
    lay.panel(
        "Out of reference range",
        [(f"{names.FEATURE_OUT_OF_RANGE_SHARE}{{{sel}}}", "{{feature_name}}")],
        unit="percentunit",
        width=8,
    )
    lay.panel(
        "New categories",
        [(f"{names.FEATURE_NEW_CATEGORY_SHARE}{{{sel}}}", "{{feature_name}}")],
        unit="percentunit",
        width=8,
    )
    lay.row("Performance (labeled rows)")
    lay.panel(
        "Model performance",
        [(f"{names.PERFORMANCE}{{{sel}}}", "{{metric}} v{{version}}")],
        width=12,
    )
    lay.panel(
        "Labeled rows in window",
        [(f"{names.LABELED_ROWS}{{{sel}}}", "v{{version}}")],
        width=12,
    )
    return {
        "title": f"Shipyard model: {model}",
        "uid": _k8s_name(f"shipyard-{model}")[:40],
        "tags": ["shipyard", "model"],
        "timezone": "utc",
        "schemaVersion": 39,
        "version": 1,
        "editable": True,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "templating": {
            "list": [
                {
                    "name": "datasource",
                    "type": "datasource",
                    "query": "prometheus",
                    "label": "Prometheus",
                }
            ]
        },
        "panels": lay.panels,
    }


def service_monitor(
    model: str,
    namespace: str = "default",
    port_name: str = "http",
    interval: str = "15s",
    *,
    model_metrics_port: str | None = None,
    model_metrics_interval: str = "30s",
    release: str = "prometheus",
) -> dict[str, Any]:
    """A ServiceMonitor (monitoring.coreos.com/v1) scraping a served model, like the seed's.

    Args:
        model: The model name; the Service is selected by ``app: <model name>``.
        namespace: The namespace of the ServiceMonitor and the Service.
        port_name: The Service port serving ``/metrics``.
        interval: Scrape interval of ``/metrics``.
        model_metrics_port: The port serving ``/model-metrics`` (default ``port_name``):
            name the drift monitor's port here (``shipyard monitor run --metrics-port``,
            whose gauges answer on any path) when it runs as a sidecar.
        model_metrics_interval: Its scrape interval.
        release: The ``release`` label the Prometheus Operator selects monitors by.
    """
    app = _k8s_name(model)
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "ServiceMonitor",
        "metadata": {
            "name": f"{app}-monitoring"[:63],
            "namespace": namespace,
            "labels": {"release": release, "app.kubernetes.io/part-of": "shipyard"},
        },
        "spec": {
            "selector": {"matchLabels": {"app": app}},
            "namespaceSelector": {"matchNames": [namespace]},
            "endpoints": [
                {"port": port_name, "interval": interval, "path": "/metrics"},
                {
                    "port": model_metrics_port or port_name,
                    "interval": model_metrics_interval,
                    "path": "/model-metrics",
                    "metricRelabelings": [
                        {"sourceLabels": ["__name__"], "regex": "model_.*", "action": "keep"}
                    ],
                },
            ],
        },
    }
