"""Shipyard: one MLOps platform, from a training script to a served, monitored model.

Concepts, and where they live::

    tracking    experiments > runs > params, metrics, tags, datasets, artifacts
                shipyard.set_experiment / start_run / log_* / search_runs
                (shipyard.tracking; the MLflow-style fluent API is re-exported here)
    models      a saved model folder: flavor, signature, files hashed in a manifest
                shipyard.log_model, shipyard.models.load("models:/name@alias")
    registry    registered models > versions, aliases guarded by gates, events
                shipyard.Client().registry (shipyard.registry)
    Client      one object reaching tracking, registry and run artifacts, in-process
                (SQLite / PostgreSQL + files / S3) or through SHIPYARD_URL's server
    config      every setting, SHIPYARD_* environment variables (shipyard.config)
    errors      ShipyardError and its families; messages end with a Hint
                (shipyard.errors)

Example::

    import shipyard

    shipyard.set_experiment("churn")
    with shipyard.start_run(run_name="training_run") as run:
        shipyard.log_params({"C": 1.0})
        shipyard.log_metric("accuracy", 0.93)
        shipyard.log_model(model, "model", registered_model_name="churn")

``import shipyard`` loads nothing heavy: each name below is imported on first use.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from shipyard import (  # noqa: F401
        config,
        deploy,
        errors,
        features,
        models,
        monitoring,
        pipelines,
        registry,
        serving,
        tracking,
    )
    from shipyard.client import Client
    from shipyard.errors import ShipyardError
    from shipyard.features.definitions import Entity, FeatureView
    from shipyard.features.store import FeatureStore
    from shipyard.models.logging import log_model
    from shipyard.tracking.fluent import (
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
    )

_FLUENT = "shipyard.tracking.fluent"

# name -> module that defines it; resolved by __getattr__ on first access.
_EXPORTS = {
    "Client": "shipyard.client",
    "Entity": "shipyard.features.definitions",
    "FeatureStore": "shipyard.features.store",
    "FeatureView": "shipyard.features.definitions",
    "ShipyardError": "shipyard.errors",
    "log_model": "shipyard.models.logging",
    **{
        name: _FLUENT
        for name in (
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
        )
    },
}
_SUBMODULES = frozenset(
    {
        "client",
        "config",
        "deploy",
        "errors",
        "features",
        "models",
        "monitoring",
        "pipelines",
        "registry",
        "serving",
        "tracking",
        "types",
    }
)

__all__ = [
    "Client",
    "Entity",
    "FeatureStore",
    "FeatureView",
    "ShipyardError",
    "__version__",
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
    "log_model",
    "log_param",
    "log_params",
    "log_table",
    "log_text",
    "search_runs",
    "set_experiment",
    "set_tag",
    "set_tags",
    "start_run",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is not None:
        value = getattr(import_module(module), name)
        globals()[name] = value  # later lookups skip __getattr__
        return value
    if name in _SUBMODULES:
        return import_module(f"shipyard.{name}")
    raise AttributeError(f"module 'shipyard' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__, *_SUBMODULES})
