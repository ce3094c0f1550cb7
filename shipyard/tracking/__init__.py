"""Experiment tracking: experiments, runs, params, metrics, tags, datasets and artifacts.

Entities (``Run``, ``Metric``, ...) and the ``TrackingStore`` protocol are plain Python;
the fluent API, the metric buffer and the stores are imported on first use, so importing
this package stays cheap (SqlTrackingStore pulls in SQLAlchemy, HttpTrackingStore httpx).
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from shipyard.tracking.entities import (
    Dataset,
    DatasetInput,
    Experiment,
    Metric,
    Param,
    Run,
    RunData,
    RunInfo,
    RunStatus,
)
from shipyard.tracking.store import TrackingStore

if TYPE_CHECKING:
    from shipyard.tracking.buffer import MetricBuffer
    from shipyard.tracking.datasets import dataset_from, display_digest
    from shipyard.tracking.fluent import (
        ActiveRun,
        active_run,
        end_run,
        flush,
        last_active_run,
        log_artifact,
        log_artifacts,
        log_dataset,
        log_dict,
        log_figure,
        log_metric,
        log_metrics,
        log_param,
        log_params,
        log_table,
        log_text,
        search_runs,
        set_experiment,
        set_tag,
        set_tags,
        start_run,
        use_client,
    )
    from shipyard.tracking.http import HttpTrackingStore
    from shipyard.tracking.sql import SqlTrackingStore

_FLUENT = (
    "ActiveRun",
    "active_run",
    "end_run",
    "flush",
    "last_active_run",
    "log_artifact",
    "log_artifacts",
    "log_dataset",
    "log_dict",
    "log_figure",
    "log_metric",
    "log_metrics",
    "log_param",
    "log_params",
    "log_table",
    "log_text",
    "search_runs",
    "set_experiment",
    "set_tag",
    "set_tags",
    "start_run",
    "use_client",
)
_LAZY = {
    "HttpTrackingStore": "shipyard.tracking.http",
    "MetricBuffer": "shipyard.tracking.buffer",
    "SqlTrackingStore": "shipyard.tracking.sql",
    "dataset_from": "shipyard.tracking.datasets",
    "display_digest": "shipyard.tracking.datasets",
    **dict.fromkeys(_FLUENT, "shipyard.tracking.fluent"),
}

__all__ = [
    "ActiveRun",
    "Dataset",
    "DatasetInput",
    "Experiment",
    "HttpTrackingStore",
    "Metric",
    "MetricBuffer",
    "Param",
    "Run",
    "RunData",
    "RunInfo",
    "RunStatus",
    "SqlTrackingStore",
    "TrackingStore",
    "active_run",
    "dataset_from",
    "display_digest",
    "end_run",
    "flush",
    "last_active_run",
    "log_artifact",
    "log_artifacts",
    "log_dataset",
    "log_dict",
    "log_figure",
    "log_metric",
    "log_metrics",
    "log_param",
    "log_params",
    "log_table",
    "log_text",
    "search_runs",
    "set_experiment",
    "set_tag",
    "set_tags",
    "start_run",
    "use_client",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'shipyard.tracking' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value
