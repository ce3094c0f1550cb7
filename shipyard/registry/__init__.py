"""The model registry: registered models, versions, aliases, promotion gates and events.

``SqlRegistryStore`` keeps models in the metadata database; ``parse_gate``/``evaluate_gate``
check a version's metrics before an alias moves; ``EventBus`` and ``WebhookDispatcher`` tell
the outside world. Names that need SQLAlchemy are imported on first use.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from shipyard.registry.entities import (
    AliasChange,
    ModelVersion,
    RegisteredModel,
    RegistryEvent,
    Webhook,
)
from shipyard.registry.gates import GateResult, evaluate_gate, parse_gate
from shipyard.registry.store import RegistryStore

if TYPE_CHECKING:
    from shipyard.registry.events import EventBus, EventType, WebhookDispatcher
    from shipyard.registry.sql import SqlRegistryStore

__all__ = [
    "AliasChange",
    "EventBus",
    "EventType",
    "GateResult",
    "ModelVersion",
    "RegisteredModel",
    "RegistryEvent",
    "RegistryStore",
    "SqlRegistryStore",
    "Webhook",
    "WebhookDispatcher",
    "evaluate_gate",
    "parse_gate",
]

_LAZY = {
    "EventBus": "shipyard.registry.events",
    "EventType": "shipyard.registry.events",
    "WebhookDispatcher": "shipyard.registry.events",
    "SqlRegistryStore": "shipyard.registry.sql",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'shipyard.registry' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
