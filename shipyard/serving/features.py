"""Online features at inference: a request names entities, the feature store fills in rows.

A model version tagged ``shipyard.feature_service=<name>`` reads that feature service
from the online store; a request ``{"entities": {"driver_id": 1001}}`` (or a list of
such objects) becomes one row of features per entity, in the order the model takes
them: by column name for models fitted on a DataFrame, else in the service's order.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from shipyard.errors import InvalidArgumentError

if TYPE_CHECKING:
    from shipyard.config import Settings
    from shipyard.serving.served import ServedModel

__all__ = ["entity_rows"]

_stores: dict[int, Any] = {}
_lock = threading.Lock()
MAX_ENTITIES = 1000


def _store(settings: Settings) -> Any:
    store = _stores.get(id(settings))
    if store is None:
        from shipyard.features.store import FeatureStore

        with _lock:
            store = _stores.setdefault(id(settings), FeatureStore(settings))
    return store


def _check_entities(entities: Any) -> list[dict[str, Any]]:
    rows = [entities] if isinstance(entities, dict) else entities
    if not isinstance(rows, list) or not rows or not all(isinstance(r, dict) and r for r in rows):
        raise InvalidArgumentError(
            "'entities' must be an object of entity keys, or a non-empty list of them.",
            hint='Send {"entities": {"driver_id": 1001}}.',
        )
    if len(rows) > MAX_ENTITIES:
        raise InvalidArgumentError(
            f"{len(rows)} entities in one request; the limit is {MAX_ENTITIES}.",
            hint="Split the request.",
        )
    for row in rows:
        for key, value in row.items():
            if not isinstance(value, str | int) or isinstance(value, bool):
                raise InvalidArgumentError(
                    f"Entity key '{key}' is {value!r}; entity keys are strings or integers."
                )
    return rows


def _short(name: str) -> str:
    """'driver_stats:conv_rate' or 'driver_stats__conv_rate' -> 'conv_rate'."""
    return name.rpartition(":")[2].rpartition("__")[2]


def entity_rows(served: ServedModel, settings: Settings, entities: Any) -> list[Any]:
    """Feature rows for ``entities`` from the model's feature service.

    Raises:
        InvalidArgumentError: the model has no feature service, or entities are malformed.
    """
    if not served.feature_service:
        raise InvalidArgumentError(
            f"Model '{served.name}' version {served.version} reads no feature service, so "
            "it cannot take entities.",
            hint="Send 'features' instead, or tag the model version "
            "shipyard.feature_service=<service name>.",
        )
    rows = _check_entities(entities)
    response = _store(settings).get_online_features(served.feature_service, rows)
    data: dict[str, list[Any]] = response.to_dict()
    keys = {k for row in rows for k in row}
    columns = {name: values for name, values in data.items() if name not in keys}
    by_short = {_short(name): values for name, values in columns.items()}
    if served.columnar:
        missing = [n for n in served.feature_names if n not in columns and n not in by_short]
        if missing:
            raise InvalidArgumentError(
                f"Feature service '{served.feature_service}' gives no feature "
                f"'{missing[0]}' that model '{served.name}' needs.",
                hint="Add the feature to the service, or retrain on the service's features.",
            )
        ordered = [columns.get(n, by_short.get(n)) for n in served.feature_names]
        return [
            dict(zip(served.feature_names, vals, strict=True))
            for vals in zip(*ordered, strict=True)
        ]
    return [list(vals) for vals in zip(*columns.values(), strict=True)]
