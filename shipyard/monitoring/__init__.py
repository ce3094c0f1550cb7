"""Model monitoring: drift of features and predictions between a reference and live data.

Concepts, and where they live::

    stats       the statistics as pure numpy/scipy functions: Wasserstein, KS, chi-square,
                Jensen-Shannon, PSI, two-proportion z (shipyard.monitoring.stats)
    columns     a column cleaned once: missing values dropped, sorted or counted
    Reference   reference data prepared once, compared with many current windows
    detectors   one class per test, ``compute(reference, current) -> DriftResult``,
                registered by name; Evidently's default choice of test per column
    drift       ``detect_drift`` over a dataset -> DatasetDrift (share of drifted
                columns), ``column_drift``, ``prediction_drift``
    profiles    ``Profile``: a training set summarized to keep with a model version
                (``attach_profile``, ``load_profile``); drift from it within stated bounds
    quality     missing values, out-of-range values, new categories
    windows     the serving prediction log read back (``read_prediction_log``), windows
    labels      ground truth by request id; ``performance``: accuracy ... RMSE
    monitor     ``Monitor``: a window vs its reference -> Prometheus gauges (``metrics``)
    service     the monitor loop (``shipyard monitor run``, the platform server)
    report      self-contained HTML + JSON drift reports
    alerts      PrometheusRule / rules files; ``evaluator``: the same alerts in-process
    dashboards  Grafana dashboard and ServiceMonitor

Example::

    from shipyard.monitoring import Reference, detect_drift

    reference = Reference.from_data(train_df, categorical=["city"])
    report = detect_drift(reference, live_df, thresholds={"age": 0.2})
    report.drifted, report.share_drifted, report["age"].score

``import shipyard.monitoring`` loads neither numpy nor scipy: each name is imported on first
use.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from shipyard.monitoring.alerts import alert_rules, prometheus_rule, rule_groups
    from shipyard.monitoring.columns import (
        CategoricalSample,
        ColumnKind,
        ColumnSample,
        NumericSample,
        column_sample,
    )
    from shipyard.monitoring.dashboards import grafana_dashboard, service_monitor
    from shipyard.monitoring.detectors import (
        DETECTORS,
        ChiSquareDetector,
        DriftDetector,
        DriftResult,
        JensenShannonDetector,
        KSDetector,
        PSIDetector,
        WassersteinDetector,
        ZTestDetector,
        default_test,
        get_detector,
    )
    from shipyard.monitoring.drift import (
        DatasetDrift,
        column_drift,
        detect_drift,
        prediction_drift,
    )
    from shipyard.monitoring.evaluator import AlertEvaluator, WebhookTrigger
    from shipyard.monitoring.labels import LabelStore
    from shipyard.monitoring.monitor import Monitor
    from shipyard.monitoring.profiles import Profile, attach_profile, load_profile
    from shipyard.monitoring.quality import data_quality
    from shipyard.monitoring.reference import Reference
    from shipyard.monitoring.report import build_report
    from shipyard.monitoring.windows import read_prediction_log

_HOMES = {
    "CategoricalSample": "columns",
    "ColumnKind": "columns",
    "ColumnSample": "columns",
    "NumericSample": "columns",
    "column_sample": "columns",
    "DETECTORS": "detectors",
    "ChiSquareDetector": "detectors",
    "DriftDetector": "detectors",
    "DriftResult": "detectors",
    "JensenShannonDetector": "detectors",
    "KSDetector": "detectors",
    "PSIDetector": "detectors",
    "WassersteinDetector": "detectors",
    "ZTestDetector": "detectors",
    "default_test": "detectors",
    "get_detector": "detectors",
    "DatasetDrift": "drift",
    "column_drift": "drift",
    "detect_drift": "drift",
    "prediction_drift": "drift",
    "Reference": "reference",
    "alert_rules": "alerts",
    "prometheus_rule": "alerts",
    "rule_groups": "alerts",
    "grafana_dashboard": "dashboards",
    "service_monitor": "dashboards",
    "AlertEvaluator": "evaluator",
    "WebhookTrigger": "evaluator",
    "LabelStore": "labels",
    "Monitor": "monitor",
    "Profile": "profiles",
    "attach_profile": "profiles",
    "load_profile": "profiles",
    "data_quality": "quality",
    "build_report": "report",
    "read_prediction_log": "windows",
}

__all__ = [
    "DETECTORS",
    "AlertEvaluator",
    "CategoricalSample",
    "ChiSquareDetector",
    "ColumnKind",
    "ColumnSample",
    "DatasetDrift",
    "DriftDetector",
    "DriftResult",
    "JensenShannonDetector",
    "KSDetector",
    "LabelStore",
    "Monitor",
    "NumericSample",
    "PSIDetector",
    "Profile",
    "Reference",
    "WassersteinDetector",
    "WebhookTrigger",
    "ZTestDetector",
    "alert_rules",
    "attach_profile",
    "build_report",
    "column_drift",
    "column_sample",
    "data_quality",
    "default_test",
    "detect_drift",
    "get_detector",
    "grafana_dashboard",
    "load_profile",
    "prediction_drift",
    "prometheus_rule",
    "read_prediction_log",
    "rule_groups",
    "service_monitor",
]


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'shipyard.monitoring' has no attribute '{name}'")
    value = getattr(import_module(f"shipyard.monitoring.{home}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
