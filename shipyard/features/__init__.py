"""Feature store: entities, sources, feature views and services; offline and online stores.

Concepts (Feast's names)::

    Entity              what features describe, identified by join keys
    FileSource ...      where feature rows come from (files, SQL, push, Kafka)
    FeatureView         typed features of entities from one source, valid for a TTL
    OnDemandFeatureView features computed at read time from request data and other views
    FeatureService      the named set of features a model consumes
    FeatureStore        apply definitions, point-in-time training sets, online reads

``import shipyard.features`` stays light: the stores load pandas, DuckDB or Redis only
when used.
"""

# ruff: noqa: F401  (names imported for type checkers; resolved lazily below)
from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from shipyard.features.definitions import (
        Entity,
        FeatureService,
        FeatureView,
        FeatureViewProjection,
        Field,
        OnDemandFeatureView,
        RequestSource,
        on_demand_feature_view,
    )
    from shipyard.features.plan import Plan, PlanItem
    from shipyard.features.repo import load_repo
    from shipyard.features.retrieval import RetrievalJob
    from shipyard.features.sources import FileSource, KafkaSource, PushSource, SqlSource
    from shipyard.features.store import FeatureStore
    from shipyard.features.transforms import Normalize, PythonTransform
    from shipyard.features.types import (
        Bool,
        Bytes,
        Float32,
        Float64,
        Int32,
        Int64,
        String,
        UnixTimestamp,
        ValueType,
    )

_EXPORTS = {
    **dict.fromkeys(
        (
            "Entity",
            "FeatureService",
            "FeatureView",
            "FeatureViewProjection",
            "Field",
            "OnDemandFeatureView",
            "RequestSource",
            "on_demand_feature_view",
        ),
        "shipyard.features.definitions",
    ),
    **dict.fromkeys(
        ("FileSource", "KafkaSource", "PushSource", "SqlSource"), "shipyard.features.sources"
    ),
    **dict.fromkeys(
        (
            "Bool",
            "Bytes",
            "Float32",
            "Float64",
            "Int32",
            "Int64",
            "String",
            "UnixTimestamp",
            "ValueType",
        ),
        "shipyard.features.types",
    ),
    "FeatureStore": "shipyard.features.store",
    "Normalize": "shipyard.features.transforms",
    "Plan": "shipyard.features.plan",
    "PlanItem": "shipyard.features.plan",
    "PythonTransform": "shipyard.features.transforms",
    "RetrievalJob": "shipyard.features.retrieval",
    "load_repo": "shipyard.features.repo",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'shipyard.features' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value
