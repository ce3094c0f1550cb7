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
    from shipyard.monitoring.columns import (
        CategoricalSample,
        ColumnKind,
        ColumnSample,
        NumericSample,
        column_sample,
    )
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
    from shipyard.monitoring.reference import Reference

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
}

__all__ = [
    "DETECTORS",
    "CategoricalSample",
    "ChiSquareDetector",
    "ColumnKind",
    "ColumnSample",
    "DatasetDrift",
    "DriftDetector",
    "DriftResult",
    "JensenShannonDetector",
    "KSDetector",
    "NumericSample",
    "PSIDetector",
    "Reference",
    "WassersteinDetector",
    "ZTestDetector",
    "column_drift",
    "column_sample",
    "default_test",
    "detect_drift",
    "get_detector",
    "prediction_drift",
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
