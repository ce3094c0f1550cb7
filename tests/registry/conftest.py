"""Registry fixtures: ``registry_store`` runs every contract test on each backend factory.

A factory takes a :class:`RegistryEnv` (database URL, workspace, the metrics gates read, the
event bus) and returns a RegistryStore. Add a backend with one line in ``REGISTRY_FACTORIES``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import pytest

from shipyard.registry.events import EventBus
from shipyard.registry.sql import SqlRegistryStore
from shipyard.registry.store import RegistryStore
from shipyard.store.db import engine_for


@dataclass
class RegistryEnv:
    db_url: str
    workspace: str
    #: run_id -> metrics; what gates see through the injected ``version_metrics``.
    run_metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    bus: EventBus = field(default_factory=EventBus)

    def version_metrics(self, run_id: str) -> Mapping[str, float]:
        return self.run_metrics.get(run_id, {})


def make_sql_registry(env: RegistryEnv) -> RegistryStore:
    return SqlRegistryStore(
        engine_for(env.db_url),
        env.workspace,
        version_metrics=env.version_metrics,
        events=env.bus,
    )


def make_http_registry(env: RegistryEnv) -> RegistryStore:
    """The same registry through the platform server's REST API (in-process)."""
    from shipyard.testing import http_registry_store

    return http_registry_store(
        env.db_url, env.workspace, "", version_metrics=env.version_metrics, events=env.bus
    )


REGISTRY_FACTORIES: dict[str, Callable[[RegistryEnv], RegistryStore]] = {
    "http": make_http_registry,
    "sql": make_sql_registry,
}


@pytest.fixture
def registry_env(db_url: str, workspace: str) -> RegistryEnv:
    return RegistryEnv(db_url, workspace)


@pytest.fixture(params=sorted(REGISTRY_FACTORIES))
def registry_store(request: pytest.FixtureRequest, registry_env: RegistryEnv) -> RegistryStore:
    """A registry in a fresh workspace, once per backend factory and database."""
    return REGISTRY_FACTORIES[request.param](registry_env)


@pytest.fixture
def sql_registry(registry_env: RegistryEnv) -> SqlRegistryStore:
    """The SQL store itself, for tests of its outbox and in-process events."""
    store = make_sql_registry(registry_env)
    assert isinstance(store, SqlRegistryStore)
    return store
